// Live updates from the API's server-sent events; polling every few seconds where a stream cannot be had.
//
// The browser's EventSource resumes by itself after a dropped connection (sending Last-Event-ID, so nothing is
// missed or repeated). It gives up only when the server refuses the stream (an error status, such as 401 before
// signing in): then the page polls, signs in if asked to, and tries the stream again a few times before settling
// for polling.

const POLL_MS = 5000;
const STREAM_TRIES = 3;
const KINDS = ["status", "progress", "epoch", "artifact", "log", "end"];

/**
 * Follow `url`'s events with `handlers` ({status(data), epoch(data), …}); `poll()` refreshes everything the
 * events would have, and returns false once there is nothing more to wait for. `onMode("live" | "polling" |
 * "ended")` says which it is. Returns an object whose close() stops both.
 */
export function follow(url, handlers, { poll, onMode = () => {} }) {
  let source = null;
  let timer = null;
  let failures = 0;
  let closed = false;

  const stop = () => {
    closed = true;
    if (source) source.close();
    clearTimeout(timer);
  };

  const pollLoop = async () => {
    if (closed) return;
    let more = true;
    try {
      more = (await poll()) !== false;
    } catch {
      // the next round tries again; the page shows its own error
    }
    if (!more) {
      stop();
      onMode("ended");
      return;
    }
    if (failures < STREAM_TRIES) open();
    else timer = setTimeout(pollLoop, POLL_MS);
  };

  function open() {
    if (closed) return;
    source = new EventSource(url);
    source.addEventListener("open", () => {
      failures = 0;
      onMode("live");
    });
    for (const kind of KINDS) {
      source.addEventListener(kind, (event) => {
        const handler = handlers[kind];
        if (handler) handler(JSON.parse(event.data), event.lastEventId);
        if (kind === "end") {
          // The job has finished and the server closes the stream: without this the browser would reconnect.
          stop();
          onMode("ended");
        }
      });
    }
    source.addEventListener("error", () => {
      if (source.readyState !== EventSource.CLOSED || closed) return; // reconnecting by itself
      failures += 1;
      onMode("polling");
      timer = setTimeout(pollLoop, failures === 1 ? 0 : POLL_MS);
    });
  }

  open();
  addEventListener("pagehide", stop);
  return { close: stop };
}
