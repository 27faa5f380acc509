#pragma once
// `latmix stats` read into the api's request (latmix/api/statistics.h), which assembles the task;
// the drift test (tests/gui) parses an argv through this exactly as `latmix` does.

#include "args.h"
#include "latmix/api/statistics.h"

namespace latmix::cli {

/// `latmix stats`'s arguments as the api's request (an option left out: the request's default).
api::StatisticsRequest statistics_request_from_args(const Args& args);
/// `latmix stats`'s options (`latmix jobs snapshot` takes them too).
std::vector<OptionSpec> statistics_options();

}  // namespace latmix::cli
