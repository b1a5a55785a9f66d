// A job's log. The job's event stream starts at the job's first event, so once it is open it brings the whole
// log, line by line, and then each new line: it alone fills the view. The tail read with GET …/logs?tail= is what
// shows until the stream's first line comes, and all there is while the page polls instead.

const MAX_LINES = 2000; // what a page keeps; the whole log is GET /jobs/{id}/logs?tail=…

export class LogView {
  constructor(pre, followBox) {
    this.pre = pre;
    this.followBox = followBox;
    this.streaming = false;
  }

  /** Lines from GET …/logs?tail= (`null`: no log to show); ignored once the stream has taken over. */
  reset(tail) {
    if (this.streaming) return;
    this.pre.replaceChildren();
    this.append(tail || []);
  }

  /** One line from the event stream. */
  add(line) {
    if (!this.streaming) {
      this.streaming = true;
      this.pre.replaceChildren();
    }
    this.append([line]);
  }

  /** The stream has stopped (the page polls now): the next tail read is shown again. */
  detach() {
    this.streaming = false;
  }

  append(lines) {
    for (const line of lines) this.pre.append(document.createTextNode(`${line}\n`));
    while (this.pre.childNodes.length > MAX_LINES) this.pre.firstChild.remove();
    this.pre.classList.toggle("empty", !this.pre.childNodes.length);
    if (this.followBox.checked) this.pre.scrollTop = this.pre.scrollHeight;
  }
}
