# The one ISA state (csrc/fastnn_cpu.h): every kernel module binds to it at import with
#     from fastnn._kernels._cpu cimport isa_state
#     fastnn_isa_bind(isa_state())
cdef const int *isa_state() noexcept nogil
