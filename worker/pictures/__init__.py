"""Everything the worker draws, one module per kind of picture: kernels, charts (curves, weight change),
confusion, mistakes, evolution (GIFs), compare; `epoch` draws an epoch's set, `server` draws on the API's request."""
