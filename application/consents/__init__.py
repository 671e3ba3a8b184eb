"""A patient's consent directives and restrictions."""
