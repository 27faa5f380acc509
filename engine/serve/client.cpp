// A client of `latmix serve` (latmix/serve/client.h).
#include "latmix/serve/client.h"

#include <httplib.h>

#include <thread>

#include "latmix/error.h"
#include "latmix/files.h"

namespace latmix::serve {

using json = nlohmann::json;

struct RemoteEngine::Impl {
  std::string base;  // scheme://host:port
  std::string token;

  std::unique_ptr<httplib::Client> client(time_t read_timeout = 30) const {
    auto c = std::make_unique<httplib::Client>(base);
    c->set_bearer_token_auth(token);
    c->set_connection_timeout(5, 0);
    c->set_read_timeout(read_timeout, 0);
    c->set_write_timeout(30, 0);
    return c;
  }

  [[noreturn]] void fail(const httplib::Result& r, const std::string& what) const {
    if (!r) {
      throw RemoteError(0, "unreachable",
                        "cannot reach the engine at " + base + " (" + httplib::to_string(r.error()) + ") during " + what);
    }
    fail(r->status, r->body, what);
  }

  [[noreturn]] void fail(int status, const std::string& text, const std::string& what) const {
    std::string kind = "http";
    std::string message = "HTTP " + std::to_string(status) + " from the engine at " + base + " during " + what;
    try {
      const json body = json::parse(text);
      kind = body.at("error").at("kind").get<std::string>();
      message = body.at("error").at("message").get<std::string>();
    } catch (const std::exception&) {
    }
    if (kind == "usage" || kind == "refused") throw UsageError(message);
    if (kind == "error") throw Error(message);
    if (kind == "cancelled") throw Cancelled();
    if (kind == "auth") throw RemoteError(status, kind, "the engine at " + base + " refused the token: " + message);
    throw RemoteError(status, kind, message);
  }

  json answer(const httplib::Result& r, const std::string& what) const {
    if (!r || r->status < 200 || r->status >= 300) fail(r, what);
    try {
      if (r->get_header_value("Content-Type").find("application/cbor") != std::string::npos)
        return json::from_cbor(r->body);
      return json::parse(r->body);
    } catch (const json::exception& e) {
      throw RemoteError(r->status, "protocol", "the engine at " + base + " answered " + what + " with no JSON: " + e.what());
    }
  }

  json get(const std::string& path, const std::string& what, bool cbor = false) const {
    httplib::Headers headers;
    if (cbor) headers.emplace("Accept", "application/cbor");
    return answer(client()->Get(path.c_str(), headers), what);
  }
  json post(const std::string& path, const json& body, const std::string& what) const {
    return answer(client()->Post(path.c_str(), body.dump(), "application/json"), what);
  }
};

namespace {

std::string encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace

RemoteEngine::RemoteEngine(const std::string& url, const std::string& token, Reconnect reconnect)
    : url_(url), reconnect_(reconnect), impl_(std::make_unique<Impl>()) {
  if (reconnect_.attempts < 0 || reconnect_.first_wait_ms < 0) {
    throw UsageError("reconnect policy: expected attempts and a wait of 0 or more, found " +
                     std::to_string(reconnect_.attempts) + " and " + std::to_string(reconnect_.first_wait_ms) + " ms");
  }
  std::string base = url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (base.rfind("http://", 0) != 0 && base.rfind("https://", 0) != 0) base = "http://" + base;
  const size_t host_start = base.find("://") + 3;
  if (base.size() <= host_start || base.find('/', host_start) != std::string::npos)
    throw UsageError("--engine: expected http://HOST:PORT, found '" + url + "'");
  if (token.empty()) throw UsageError("--engine: no token (give --token-file FILE, or set LATMIX_ENGINE_TOKEN)");
  impl_->base = base;
  impl_->token = token;
}

RemoteEngine::~RemoteEngine() = default;

json RemoteEngine::engine() const { return impl_->get("/v1/engine", "GET /v1/engine"); }

json RemoteEngine::submit(const std::string& task, const json& request) const {
  return impl_->post("/v1/jobs", {{"task", task}, {"request", request}}, "submitting the " + task + " job");
}

json RemoteEngine::jobs() const { return impl_->get("/v1/jobs", "listing the jobs"); }
json RemoteEngine::job(const std::string& id) const { return impl_->get("/v1/jobs/" + id, "reading job " + id); }
json RemoteEngine::pause(const std::string& id) const { return impl_->post("/v1/jobs/" + id + "/pause", json::object(), "pausing job " + id); }
json RemoteEngine::resume(const std::string& id) const { return impl_->post("/v1/jobs/" + id + "/resume", json::object(), "resuming job " + id); }
json RemoteEngine::cancel(const std::string& id) const { return impl_->post("/v1/jobs/" + id + "/cancel", json::object(), "cancelling job " + id); }

void RemoteEngine::remove(const std::string& id) const {
  impl_->answer(impl_->client()->Delete(("/v1/jobs/" + id).c_str()), "removing job " + id);
}

json RemoteEngine::result(const std::string& id) const {
  return impl_->get("/v1/jobs/" + id + "/result", "reading the result of job " + id, true);
}

json RemoteEngine::snapshot(const std::string& id, const json& statistics, const std::string& tag) const {
  return impl_->post("/v1/jobs/" + id + "/snapshot", {{"request", statistics}, {"tag", tag}},
                     "asking job " + id + " for a snapshot");
}

json RemoteEngine::snapshot_result(const std::string& id, int64_t number) const {
  return impl_->get("/v1/jobs/" + id + "/snapshots/" + std::to_string(number),
                    "reading snapshot " + std::to_string(number) + " of job " + id, true);
}

json RemoteEngine::files(const std::string& path) const {
  return impl_->get("/v1/files?path=" + encode(path), "listing " + path);
}

int64_t RemoteEngine::follow(const std::string& id, int64_t after, const std::function<bool(const JobEvent&)>& on_event,
                             const CancelToken& cancel) const {
  int failures = 0;
  bool ended = false;
  bool stopped = false;
  while (!ended && !stopped) {
    std::string buffer;
    std::string error_body;
    int status = 0;
    auto c = impl_->client(10);  // the server writes at least once a second
    httplib::Headers headers = {{"Accept", "text/event-stream"}};
    const auto r = c->Get(
        ("/v1/jobs/" + id + "/events?after=" + std::to_string(after)).c_str(), headers,
        [&](const httplib::Response& response) {
          status = response.status;
          return true;
        },
        [&](const char* data, size_t length) {
          if (status != 200) {
            error_body.append(data, length);
            return true;
          }
          buffer.append(data, length);
          for (size_t end; (end = buffer.find("\n\n")) != std::string::npos;) {
            const std::string block = buffer.substr(0, end);
            buffer.erase(0, end + 2);
            JobEvent e;
            std::string data_line;
            size_t start = 0;
            while (start < block.size()) {
              const size_t nl = std::min(block.find('\n', start), block.size());
              const std::string line = block.substr(start, nl - start);
              start = nl + 1;
              if (line.rfind("id: ", 0) == 0) e.seq = std::stoll(line.substr(4));
              else if (line.rfind("event: ", 0) == 0) e.type = line.substr(7);
              else if (line.rfind("data: ", 0) == 0) data_line = line.substr(6);
            }
            if (e.type.empty()) continue;  // a keep-alive comment
            e.data = json::parse(data_line);
            after = e.seq;
            failures = 0;
            if (e.type == "end") ended = true;
            if (!on_event(e)) {
              stopped = true;
              return false;
            }
          }
          return !cancel.cancelled();
        });
    if (ended || stopped || cancel.cancelled()) break;
    if (r && status != 200 && status != 0) impl_->fail(status, error_body, "following job " + id);
    if (r && status == 200) continue;  // the server closed a finished stream: asked again, it ends at once
    if (++failures > reconnect_.attempts) impl_->fail(r, "following job " + id);
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(reconnect_.first_wait_ms) * failures));
  }
  return after;
}

void RemoteEngine::download(const std::string& path, const std::string& local, const JobControl& job) const {
  AtomicFile file(local);
  uint64_t total = 0, done = 0;
  int status = 0;
  std::string error_body;
  auto c = impl_->client(60);
  const auto r = c->Get(
      ("/v1/file?path=" + encode(path)).c_str(), httplib::Headers{},
      [&](const httplib::Response& response) {
        status = response.status;
        if (response.has_header("Content-Length")) total = std::stoull(response.get_header_value("Content-Length"));
        return true;
      },
      [&](const char* data, size_t length) {
        if (status != 200) {
          error_body.append(data, length);
          return true;
        }
        file.write(data, length);
        done += length;
        job.report("download", static_cast<int64_t>(done), static_cast<int64_t>(total));
        return !job.cancel.cancelled();
      });
  job.cancel.check();
  if (r && status != 200) impl_->fail(status, error_body, "downloading " + path);
  if (!r) impl_->fail(r, "downloading " + path);
  file.commit();
}

json RemoteEngine::run(const std::string& task, const json& request, const RemoteCallbacks& callbacks) const {
  const json info = submit(task, request);
  const std::string id = info.at("id").get<std::string>();
  if (callbacks.on_submitted) callbacks.on_submitted(id);
  std::string end_state;
  int64_t last = follow(
      id, 0,
      [&](const JobEvent& e) {
        if (e.type == "end") end_state = e.data.value("state", "");
        if (callbacks.on_event) callbacks.on_event(e);
        return true;
      },
      callbacks.cancel);
  if (end_state.empty() && callbacks.cancel.cancelled()) {
    cancel(id);
    follow(
        id, last,
        [&](const JobEvent& e) {
          if (e.type == "end") end_state = e.data.value("state", "");
          if (callbacks.on_event) callbacks.on_event(e);
          return true;
        },
        CancelToken());
    if (end_state == "cancelled") throw Cancelled();
  }
  return result(id);
}

}  // namespace latmix::serve
