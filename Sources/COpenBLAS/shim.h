// COpenBLAS: the system OpenBLAS (CBLAS) and LAPACKE headers. No code lives here.
// Debian builds OpenBLAS with NO_LAPACKE, so the module map links both libraries.
#pragma once
#include <cblas.h>
#include <lapacke.h>
