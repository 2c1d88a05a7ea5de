// The engine's names for the logits chain's request and result (backend/logits_chain.h);
// the chain itself runs on the backend, where the logits are.
#pragma once
#include "backend/logits_chain.h"

namespace ballast::engine {

using backend::SampleResult;
using backend::SamplingParams;

}  // namespace ballast::engine
