// Row dequantization for every storage dtype, usable by any backend's loader.
#pragma once
#include "core/quant.h"
