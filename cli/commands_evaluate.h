#pragma once
// `latmix eval` read into the api's request (latmix/api/evaluate.h), which assembles the task; the
// drift test (tests/gui) parses an argv through this exactly as `latmix` does.

#include "args.h"
#include "latmix/api/evaluate.h"

namespace latmix::cli {

/// `latmix eval`'s arguments as the api's request (an option left out: the request's default;
/// --quant SPEC: one spec).
api::EvaluateRequest evaluate_request_from_args(const Args& args);

}  // namespace latmix::cli
