#pragma once
// `latmix analyze` read into the api's request (latmix/api/analyze.h), which assembles the task; the
// drift test (tests/gui) parses an argv through this exactly as `latmix` does.

#include "args.h"
#include "latmix/api/analyze.h"

namespace latmix::cli {

/// `latmix analyze`'s arguments as the api's request (an option left out: the request's default).
api::AnalyzeRequest analyze_request_from_args(const Args& args);

}  // namespace latmix::cli
