"""Looking inside a trained network: what each convolution responds to in an image (`activations`), where the
network looked for a class (`gradcam`), which test images excite a filter most (`filters`), the pictures of each
(`figures`, `filter_figures`), and `server`, the process the API asks for them (`python -m worker.inside.server`)."""
