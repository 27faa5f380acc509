// `latmix serve`: the engine's use cases over HTTP (latmix/serve/server.h; endpoints in docs/remote.md).
#include "latmix/serve/server.h"

#include <httplib.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/malloc_tuning.h"
#include "latmix/serve/jobs.h"
#include "latmix/serve/roots.h"
#include "latmix/serve/tasks.h"

namespace latmix::serve {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// How long an event stream waits for the next event before it sends a keep-alive comment (the
// client checks its own cancel between reads, and a dead connection is noticed).
constexpr auto kEventWait = std::chrono::milliseconds(1000);

void send_error(httplib::Response& res, int status, const std::string& kind, const std::string& message) {
  res.status = status;
  // A message may quote the bytes of a malformed request: invalid UTF-8 is replaced, not thrown.
  res.set_content(json{{"error", {{"kind", kind}, {"message", message}}}}.dump(-1, ' ', false,
                                                                               json::error_handler_t::replace),
                  "application/json");
}

void send_json(const httplib::Request& req, httplib::Response& res, const json& body, int status = 200) {
  res.status = status;
  const std::string accept = req.get_header_value("Accept");
  if (accept.find("application/cbor") != std::string::npos) {
    const std::vector<uint8_t> cbor = json::to_cbor(body);
    res.set_content(std::string(cbor.begin(), cbor.end()), "application/cbor");
  } else {
    res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  }
}

bool same_token(const std::string& given, const std::string& token) {
  // Constant time in the token's length: every byte compared whatever the first difference.
  unsigned char diff = given.size() == token.size() ? 0 : 1;
  for (size_t i = 0; i < token.size(); ++i) {
    diff |= static_cast<unsigned char>(token[i] ^ (i < given.size() ? given[i] : 0));
  }
  return diff == 0;
}

// A POST body: a JSON object with no key but `keys`. False (the 400 sent) otherwise; `what` names it
// in the message ("a job is {task, request}").
bool read_body(const httplib::Request& req, httplib::Response& res, const std::vector<std::string>& keys,
               const std::string& what, json& body) {
  std::string shape = "{";
  for (const std::string& k : keys) shape += (shape.size() > 1 ? ", " : "") + k;
  shape += "}";
  try {
    body = json::parse(req.body);
  } catch (const json::exception& e) {
    send_error(res, 400, "usage", std::string("the body is not JSON: ") + e.what());
    return false;
  }
  if (!body.is_object()) {
    send_error(res, 400, "usage", "the body must be a JSON object " + shape);
    return false;
  }
  for (const auto& [key, value] : body.items()) {
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
      send_error(res, 400, "usage", "unknown key '" + key + "' (" + what + " is " + shape + ")");
      return false;
    }
  }
  return true;
}

std::string sse_event(const JobEvent& e) {
  return "id: " + std::to_string(e.seq) + "\nevent: " + e.type + "\ndata: " + e.data.dump() + "\n\n";
}

}  // namespace

std::string generate_token() {
  std::ifstream random("/dev/urandom", std::ios::binary);
  unsigned char bytes[32];
  if (!random.read(reinterpret_cast<char*>(bytes), sizeof bytes)) throw Error("/dev/urandom: cannot read a token");
  std::string out;
  char buf[3];
  for (unsigned char b : bytes) {
    std::snprintf(buf, sizeof buf, "%02x", b);
    out += buf;
  }
  return out;
}

void write_token_file(const std::string& path, const std::string& token) {
  const fs::path parent = fs::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty() && !fs::exists(parent, ec)) {
    fs::create_directories(parent, ec);
    if (ec) throw Error(parent.string() + ": cannot create the token's folder: " + ec.message());
    ::chmod(parent.c_str(), 0700);
  }
  AtomicFile file(path);
  if (::fchmod(file.fd(), 0600) != 0) throw Error(path + ": cannot make the token file private");
  file.write(token + "\n");
  file.commit();
}

std::string read_token_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error(path + ": no such token file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
    throw Error(path + ": the token file can be read by others (mode " + mode + "); chmod 600 it first");
  }
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
  if (line.empty()) throw Error(path + ": the token file is empty");
  return line;
}

struct Server::Impl {
  ServeOptions options;
  Roots roots;
  TaskHost host;
  JobQueue jobs;
  httplib::Server http;
  std::atomic<bool> stopping{false};
  std::atomic<int> port{0};

  explicit Impl(ServeOptions o)
      : options(std::move(o)),
        roots(options.roots),
        host(TaskEnvironment{options.device, options.bundled_sample, options.start_ranks}),
        jobs([this](const std::string& task, const json& request,
                    const TaskEvents& events) { return host.run(task, request, events); },
             pausable_tasks(), 64,
             [this](const json& learn, const json& statistics, const TransformPlan& plan, int64_t step,
                    const JobControl& job) { return host.snapshot(learn, statistics, plan, step, job); }) {
    if (options.token.empty()) throw UsageError("serve: the token is empty");
    routes();
  }

  void note(const std::string& line) const {
    if (options.log) options.log(line);
  }

  void routes();
  void submit(const httplib::Request& req, httplib::Response& res);
  void snapshot(const httplib::Request& req, httplib::Response& res);
  void events(const httplib::Request& req, httplib::Response& res);
  void files(const httplib::Request& req, httplib::Response& res);
  void download(const httplib::Request& req, httplib::Response& res);
};

void Server::Impl::routes() {
  http.set_payload_max_length(options.max_request_bytes);
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (auth.rfind(prefix, 0) != 0 || !same_token(auth.substr(prefix.size()), options.token)) {
      note("refused " + req.method + " " + req.path + " from " + req.remote_addr + ": " +
           (auth.empty() ? "no token" : "wrong token"));
      send_error(res, 401, "auth",
                 auth.empty() ? "this engine needs its token: send 'Authorization: Bearer TOKEN' (latmix --engine "
                                "URL --token-file FILE)"
                              : "wrong token");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const PathRefused& e) {
      return send_error(res, 403, "refused", e.what());
    } catch (const UsageError& e) {
      return send_error(res, 400, "usage", e.what());
    } catch (const std::exception& e) {
      note("error in " + req.method + " " + req.path + ": " + e.what());
      return send_error(res, 500, "internal", e.what());
    } catch (...) {
    }
    send_error(res, 500, "internal", "unknown failure");
  });
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) return send_error(res, 404, "not_found", "no such endpoint: " + req.method + " " + req.path);
    if (res.status == 413) return send_error(res, 413, "too_large", "the request is larger than this engine accepts");
    send_error(res, res.status, "http", "HTTP " + std::to_string(res.status));
  });

  http.Get("/v1/engine", [this](const httplib::Request& req, httplib::Response& res) {
    json facts = options.facts;
    facts["protocol"] = 1;
    facts["device"] = options.device;
    facts["roots"] = roots.folders();
    facts["bundled_sample"] = options.bundled_sample;  // the server's path of the default text (clients map theirs to it)
    facts["tasks"] = task_names();
    facts["jobs_active"] = jobs.active();
    send_json(req, res, facts);
  });
  http.Post("/v1/jobs", [this](const httplib::Request& req, httplib::Response& res) { submit(req, res); });
  http.Get("/v1/jobs", [this](const httplib::Request& req, httplib::Response& res) {
    json list = json::array();
    for (const JobInfo& info : jobs.list()) list.push_back(to_json(info));
    send_json(req, res, {{"jobs", list}});
  });
  http.Get(R"(/v1/jobs/([0-9a-f]{16}))", [this](const httplib::Request& req, httplib::Response& res) {
    const auto info = jobs.info(req.matches[1]);
    if (!info) return send_error(res, 404, "not_found", "no job " + std::string(req.matches[1]));
    send_json(req, res, to_json(*info));
  });
  http.Get(R"(/v1/jobs/([0-9a-f]{16})/events)",
           [this](const httplib::Request& req, httplib::Response& res) { events(req, res); });
  http.Get(R"(/v1/jobs/([0-9a-f]{16})/result)", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    const auto info = jobs.info(id);
    if (!info) return send_error(res, 404, "not_found", "no job " + id);
    if (info->state == JobState::Done) return send_json(req, res, *jobs.result(id));
    if (info->state == JobState::Failed)
      return send_error(res, info->error_kind == "usage" ? 400 : 422, info->error_kind, info->error);
    if (info->state == JobState::Cancelled) return send_error(res, 409, "cancelled", "the job was cancelled");
    send_error(res, 409, "not_finished", "the job is " + std::string(to_string(info->state)) + "; no result yet");
  });
  const auto action = [this](const char* verb, bool (JobQueue::*fn)(const std::string&)) {
    return [this, verb, fn](const httplib::Request& req, httplib::Response& res) {
      const std::string id = req.matches[1];
      const auto info = jobs.info(id);
      if (!info) return send_error(res, 404, "not_found", "no job " + id);
      if (!(jobs.*fn)(id)) {
        return send_error(res, 409, "conflict",
                          "cannot " + std::string(verb) + " a " + info->task + " job that is " + to_string(info->state) +
                              (std::string(verb) == "pause" ? " (only running learn, compare and export jobs pause)" : ""));
      }
      note(std::string(verb) + " job " + id);
      send_json(req, res, to_json(*jobs.info(id)));
    };
  };
  http.Post(R"(/v1/jobs/([0-9a-f]{16})/pause)", action("pause", &JobQueue::pause));
  http.Post(R"(/v1/jobs/([0-9a-f]{16})/resume)", action("resume", &JobQueue::resume));
  http.Post(R"(/v1/jobs/([0-9a-f]{16})/cancel)", action("cancel", &JobQueue::cancel));
  http.Post(R"(/v1/jobs/([0-9a-f]{16})/snapshot)",
            [this](const httplib::Request& req, httplib::Response& res) { snapshot(req, res); });
  http.Get(R"(/v1/jobs/([0-9a-f]{16})/snapshots/([0-9]{1,18}))", [this](const httplib::Request& req,
                                                                        httplib::Response& res) {
    const std::string id = req.matches[1];
    if (!jobs.info(id)) return send_error(res, 404, "not_found", "no job " + id);
    const auto result = jobs.snapshot_result(id, std::stoll(req.matches[2]));
    if (!result) {
      return send_error(res, 404, "not_found",
                        "job " + id + " has no snapshot " + std::string(req.matches[2]) + " (not taken yet, failed, "
                        "or older than the last " + std::to_string(JobQueue::kSnapshotsKept) + ")");
    }
    send_json(req, res, *result);
  });
  http.Delete(R"(/v1/jobs/([0-9a-f]{16}))", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    if (!jobs.info(id)) return send_error(res, 404, "not_found", "no job " + id);
    if (!jobs.remove(id)) return send_error(res, 409, "conflict", "the job has not ended: cancel it first");
    send_json(req, res, {{"removed", id}});
  });
  http.Get("/v1/files", [this](const httplib::Request& req, httplib::Response& res) { files(req, res); });
  http.Get("/v1/file", [this](const httplib::Request& req, httplib::Response& res) { download(req, res); });
}

// POST /v1/jobs/ID/snapshot {request, tag}: statistics of the transforms a learn job has now.
void Server::Impl::snapshot(const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches[1];
  const auto info = jobs.info(id);
  if (!info) return send_error(res, 404, "not_found", "no job " + id);
  json body;
  if (!read_body(req, res, {"request", "tag"}, "a snapshot", body)) return;
  if (!body.contains("request") || !body["request"].is_object())
    return send_error(res, 400, "usage", "key 'request': expected a JSON object (a statistics request)");
  if (body.contains("tag") && !body["tag"].is_string())
    return send_error(res, 400, "usage", "key 'tag': expected a string");
  const std::string tag = body.value("tag", std::string());
  if (info->task != "learn" || (info->state != JobState::Running && info->state != JobState::Paused)) {
    return send_error(res, 409, "conflict",
                      "snapshots are taken of running or paused learn jobs; job " + id + " is a " + info->task +
                          " job that is " + to_string(info->state));
  }
  const json& learn = info->request;
  const std::string method = learn.value("method", std::string());
  if (!find_method(method).learned) {
    return send_error(res, 409, "conflict",
                      "job " + id + " builds the fixed plan of method " + method +
                          ": it has no learning steps to take a snapshot at (take statistics of its output instead)");
  }
  json r = body["request"];
  for (const char* key : {"transform", "transforms"}) {
    if (r.contains(key) && !r[key].is_null() && r[key] != "" && r[key] != "none") {
      return send_error(res, 400, "usage",
                        std::string("snapshot request: key '") + key +
                            "': a snapshot's transforms are the learning job's own; leave it out");
    }
  }
  if (r.contains("model") && r["model"].is_string() && !r["model"].get<std::string>().empty()) {
    const std::string model = roots.confine(r["model"].get<std::string>(), "snapshot request: key 'model'");
    if (model != learn.value("model", std::string())) {
      return send_error(res, 400, "usage",
                        "snapshot request: key 'model': the learning job's model is " +
                            learn.value("model", std::string()) + ", not " + model);
    }
  }
  r["model"] = learn.value("model", std::string());
  r["tokenizer"] = learn.value("tokenizer", std::string());
  r["transform"] = "none";
  r.erase("transforms");
  confine_request("statistics", r, roots);
  check_task_request("statistics", r);
  const auto number = jobs.snapshot(id, std::move(r), tag);
  if (!number) return send_error(res, 409, "conflict", "job " + id + " has ended: no snapshot");
  note("snapshot " + std::to_string(*number) + " of job " + id + " asked by " + req.remote_addr);
  send_json(req, res, {{"snapshot", *number}, {"tag", tag}});
}

void Server::Impl::submit(const httplib::Request& req, httplib::Response& res) {
  json body;
  if (!read_body(req, res, {"task", "request"}, "a job", body)) return;
  if (!body.contains("task") || !body["task"].is_string())
    return send_error(res, 400, "usage", "key 'task': expected a string (one of the tasks of GET /v1/engine)");
  if (!body.contains("request") || !body["request"].is_object())
    return send_error(res, 400, "usage", "key 'request': expected a JSON object");
  const std::string task = body["task"];
  json request = body["request"];
  path_keys(task);  // an unknown task: UsageError
  set_task_device(task, request, options.device);
  confine_request(task, request, roots);
  check_task_request(task, request);
  const std::string id = jobs.submit(task, std::move(request));
  note("job " + id + ": " + task + " queued by " + req.remote_addr);
  send_json(req, res, to_json(*jobs.info(id)), 201);
}

void Server::Impl::events(const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches[1];
  if (!jobs.info(id)) return send_error(res, 404, "not_found", "no job " + id);
  int64_t after = 0;
  const std::string from = req.has_header("Last-Event-ID") ? req.get_header_value("Last-Event-ID")
                                                           : req.get_param_value("after");
  if (!from.empty()) {
    size_t used = 0;
    try {
      after = std::stoll(from, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != from.size() || after < 0)
      return send_error(res, 400, "usage", "after: expected an event number (0 or more), found '" + from + "'");
  }
  auto next = std::make_shared<int64_t>(after);
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", [this, id, next](size_t, httplib::DataSink& sink) {
    bool ended = false;
    const auto batch = jobs.events(id, *next, kEventWait, &ended);
    if (!batch || stopping) {
      sink.done();
      return true;
    }
    std::string out;
    for (const JobEvent& e : *batch) {
      out += sse_event(e);
      *next = e.seq;
    }
    if (out.empty() && !ended) out = ": waiting\n\n";
    if (!out.empty() && !sink.write(out.data(), out.size())) return false;
    if (ended) {
      // Every event is out once the job has ended and the log held nothing past `next`.
      const auto rest = jobs.events(id, *next, std::chrono::milliseconds(0));
      if (!rest || rest->empty()) sink.done();
    }
    return true;
  });
}

void Server::Impl::files(const httplib::Request& req, httplib::Response& res) {
  const std::string path = req.get_param_value("path");
  if (path.empty()) {
    json entries = json::array();
    for (const auto& root : roots.folders()) entries.push_back({{"name", root}, {"kind", "folder"}});
    return send_json(req, res, {{"path", ""}, {"entries", entries}});
  }
  const std::string folder = roots.confine(path, "path");
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return send_error(res, 404, "not_found", folder + ": not a folder");
  json entries = json::array();
  std::vector<fs::directory_entry> list;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) list.push_back(*it);
  if (ec) return send_error(res, 403, "refused", folder + ": " + ec.message());
  std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) { return a.path() < b.path(); });
  for (const auto& e : list) {
    std::error_code e2;
    const bool dir = e.is_directory(e2);
    json entry = {{"name", e.path().filename().string()}, {"kind", dir ? "folder" : "file"}};
    if (!dir) entry["bytes"] = e.is_regular_file(e2) ? static_cast<int64_t>(e.file_size(e2)) : 0;
    entries.push_back(entry);
  }
  send_json(req, res, {{"path", folder}, {"entries", entries}});
}

void Server::Impl::download(const httplib::Request& req, httplib::Response& res) {
  const std::string file = roots.confine(req.get_param_value("path"), "path");
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return send_error(res, 404, "not_found", file + ": not a file");
  const auto size = static_cast<size_t>(fs::file_size(file, ec));
  auto in = std::make_shared<std::ifstream>(file, std::ios::binary);
  if (!*in) return send_error(res, 403, "refused", file + ": cannot be read");
  note("download " + file + " by " + req.remote_addr);
  res.set_header("Content-Disposition", "attachment; filename=\"" + fs::path(file).filename().string() + "\"");
  res.set_content_provider(size, "application/octet-stream", [in](size_t offset, size_t length, httplib::DataSink& sink) {
    std::vector<char> buf(std::min<size_t>(length, 1 << 20));
    in->seekg(static_cast<std::streamoff>(offset));
    in->read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto got = static_cast<size_t>(in->gcount());
    if (got == 0) return false;
    return sink.write(buf.data(), got);
  });
}

namespace {

// The tasks run on the job queue's worker thread: one malloc arena (latmix/malloc_tuning.h says why; the
// CLI has set it already, a program that embeds the server may not have).
std::unique_ptr<Server::Impl> make_impl(ServeOptions options) {
  tune_malloc_for_tensors();
  return std::make_unique<Server::Impl>(std::move(options));
}

}  // namespace

Server::Server(ServeOptions options) : impl_(make_impl(std::move(options))) {}

Server::~Server() { stop(); }

const ServeOptions& Server::options() const { return impl_->options; }

int Server::bind() {
  const std::string& host = impl_->options.host;
  int port = impl_->options.port;
  if (port == 0) {
    port = impl_->http.bind_to_any_port(host);
    if (port < 0) throw Error("serve: cannot listen on " + host + " (no free port, or no such address)");
  } else if (!impl_->http.bind_to_port(host, port)) {
    throw Error("serve: cannot listen on " + host + ":" + std::to_string(port) +
                " (the port is in use, or no such address); choose another with --listen HOST:PORT");
  }
  impl_->port = port;
  return port;
}

void Server::run() { impl_->http.listen_after_bind(); }

void Server::stop() {
  if (!impl_) return;
  impl_->stopping = true;
  impl_->http.stop();
}

}  // namespace latmix::serve
