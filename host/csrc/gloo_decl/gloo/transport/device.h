// Gloo header torch's c10d headers include; see lthost_gloo_decl.h.
#pragma once
#include <gloo/lthost_gloo_decl.h>
