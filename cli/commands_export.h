#pragma once
// `latmix export` and `latmix verify` read into the api's requests (latmix/api/export.h), which
// assemble the tasks; the drift test (tests/gui) parses an argv through these exactly as `latmix` does.
#include "args.h"
#include "latmix/api/export.h"

namespace latmix::cli {

/// `latmix export`'s arguments as the api's request (an option left out: the request's default).
/// \throws latmix::UsageError for an empty --verify-data.
api::ExportRequest export_request_from_args(const Args& args);
/// `latmix verify`'s arguments as the api's request.
api::VerifyRequest verify_request_from_args(const Args& args);

}  // namespace latmix::cli
