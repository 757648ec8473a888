"""Private compiled kernels. Public names live in fastnn.functions, fastnn.gradient, ..."""
