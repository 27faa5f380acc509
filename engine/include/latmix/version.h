#pragma once
/// \file version.h
/// Room: engine/base/ (latmix_core, no LibTorch).
/// The tool's version and the git commit it was configured from (for --version and manifests).

namespace latmix {

/// "0.1.0"
const char* version();
/// Short git commit hash at configure time, or "unknown".
const char* git_commit();

}  // namespace latmix
