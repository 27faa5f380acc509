#pragma once
/// \file bundle.h
/// The export bundle: an export folder (latmix/export.h) as one `.zip`, entries stored without
/// compression, zip64 (files over 4 GB), manifest.json first. The library (latmix_bundle) uses
/// Qt 6 Core and QuaZip and is built only where both are found; this header is Qt-free, so the
/// CLI and the studio call it with plain strings. The engine itself never links it.

#include <nlohmann/json.hpp>

#include <string>

#include "latmix/export.h"
#include "latmix/progress.h"

namespace latmix {

/// Zips every regular file of `folder` (an export: it must hold manifest.json) into `zip_path`.
/// Written to a temp file beside the target, fsync'ed, then renamed; an existing zip is replaced
/// only with `overwrite`. Progress: stage "zip", done/total in bytes; cancel between chunks. On
/// error or cancel the temp file is removed and an existing target is untouched.
/// \throws latmix::Error naming the folder or zip and the problem; latmix::Cancelled.
void write_bundle(const std::string& folder, const std::string& zip_path, bool overwrite, const JobControl& job = {});

/// manifest.json of a bundle. \throws latmix::Error when the zip cannot be read or has none.
nlohmann::json read_bundle_manifest(const std::string& zip_path);

/// Checks a bundle: every file its manifest lists is in it with that size and SHA-256 (and the
/// zip's own CRC-32), and nothing else is. Progress: stage "hash", bytes.
/// \throws latmix::Error when `zip_path` is not a readable zip with a manifest.
ExportVerification verify_bundle(const std::string& zip_path, const JobControl& job = {});

/// verify_bundle(), then, when every entry matched, the checks `latmix verify` runs on a folder
/// (load, decode of packed codes, transform groups, GGUF read-back, the recorded perplexity on the
/// text the export carries or on `text`; see verify_export_with_text) on a private copy of the
/// entries in the system's temp folder, removed afterwards. When the temp folder lacks the room,
/// the folder checks are reported as not run (with both sizes). Progress: "hash", then "unzip"
/// (bytes), then the folder checks' stages.
ExportVerification verify_bundle_contents(const std::string& zip_path, const std::string& text = "",
                                          bool no_ppl = false, const JobControl& job = {});

}  // namespace latmix
