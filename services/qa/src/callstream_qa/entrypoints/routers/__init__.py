"""One router per resource of the QA API; each handler calls the use cases and shapes its answer."""
