"""One router per resource. Routes parse, call one use case, and render."""
