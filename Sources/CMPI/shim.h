// CMPI: the system MPI (Open MPI 4.1 from Debian: libopenmpi-dev, pkg-config `ompi-c`).
// Only built with the package trait `MPI`. Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT,
// MPI_SUM, MPI_IN_PLACE, MPI_STATUS_IGNORE, MPI_ERRORS_RETURN, MPI_REQUEST_NULL) are macros
// that cast the address of a global object; Swift cannot import them, so this header gives
// each one as a static inline accessor. No other code lives here.
#pragma once
#include <mpi.h>

static inline MPI_Comm cmpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm cmpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype cmpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype cmpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype cmpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Op cmpi_sum(void) { return MPI_SUM; }
static inline MPI_Op cmpi_max(void) { return MPI_MAX; }
static inline MPI_Op cmpi_min(void) { return MPI_MIN; }
static inline void *cmpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Status *cmpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Errhandler cmpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Request cmpi_request_null(void) { return MPI_REQUEST_NULL; }
