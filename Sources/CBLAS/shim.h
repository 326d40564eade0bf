// OpenBLAS's own cblas.h (pkg-config openblas pins the openblas-pthread include dir), which also
// declares openblas_set_num_threads / openblas_get_num_threads.
#include <cblas.h>
