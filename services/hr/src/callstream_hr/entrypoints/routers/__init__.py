"""One router per resource of the HR API; each handler calls one use case and shapes its answer."""
