// The test zygote (tests/support/zygote_*.cpp) through its launcher, as ctest uses it: each case
// here runs latmix_test_launch on the probe binary (zygote_probe.cpp) with its own zygote directory.
// A case ran in a fork of the zygote when the probe's pid is not the launcher's (the launcher execs
// the binary itself when it falls back) and its parent is the zygote.

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_paths.h"

namespace fs = std::filesystem;

namespace {

struct Launch {
  Launch(std::string probe_case_name, std::vector<std::string> added_env = {}, std::string working_dir = {})
      : probe_case(std::move(probe_case_name)), env(std::move(added_env)), cwd(std::move(working_dir)) {}
  std::string probe_case;        // ZygoteProbe.<probe_case>
  std::vector<std::string> env;  // added to the driver's environment
  std::string cwd;               // empty: the test's root
  std::string binary = LATMIX_ZYGOTE_PROBE;
  std::string zygote_dir;  // empty: the test's own
  std::string stdin_text;
  int ignored_signal = 0;         // the launcher starts with this signal ignored (as bash's `cmd &`)
  long long file_size_limit = -1;  // the launcher starts under this RLIMIT_FSIZE (bytes; `ulimit -f`)
};

struct Launched {
  pid_t launcher = -1;
  std::string out_path, err_path;
};

struct Outcome {
  pid_t launcher = -1;
  int status = -1;
  std::string out, err;
  std::map<std::string, std::string> probe;  // probe.KEY=VALUE lines, without "probe."
  pid_t pid() const { return probe.count("pid") ? std::stoi(probe.at("pid")) : -1; }
  pid_t ppid() const { return probe.count("ppid") ? std::stoi(probe.at("ppid")) : -1; }
  bool exited_with(int code) const { return WIFEXITED(status) && WEXITSTATUS(status) == code; }
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::map<std::string, std::string> probe_lines(const std::string& out) {
  std::map<std::string, std::string> facts;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    auto eq = line.find('=');
    if (line.rfind("probe.", 0) == 0 && eq != std::string::npos) facts[line.substr(6, eq - 6)] = line.substr(eq + 1);
  }
  return facts;
}

// Gone, or a zombie that its parent has yet to reap.
bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close_paren = stat.rfind(')');
  return close_paren != std::string::npos && stat.size() > close_paren + 2 && stat[close_paren + 2] == 'Z';
}

bool eventually(const std::function<bool()>& condition, std::chrono::seconds limit = std::chrono::seconds(20)) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

class ZygoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = latmix::test::temp_dir("zygote");
    zygote_dir_ = root_ + "/z";
  }

  std::vector<std::string> environment_for(const Launch& launch) const {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string entry = *e;
      if (entry.rfind("LATMIX_ZYGOTE_DIR=", 0) != 0 && entry.rfind("LATMIX_TEST_ZYGOTE=", 0) != 0 &&
          entry.rfind("LATMIX_PROBE_", 0) != 0) {
        env.push_back(entry);
      }
    }
    env.push_back("LATMIX_ZYGOTE_DIR=" + (launch.zygote_dir.empty() ? zygote_dir_ : launch.zygote_dir));
    env.insert(env.end(), launch.env.begin(), launch.env.end());
    return env;
  }

  Launched start(const Launch& launch) {
    int n = counter_++;
    Launched started{-1, root_ + "/out-" + std::to_string(n), root_ + "/err-" + std::to_string(n)};
    std::string in_path = root_ + "/in-" + std::to_string(n);
    std::ofstream(in_path) << launch.stdin_text;
    std::vector<std::string> args = {LATMIX_TEST_LAUNCH, launch.binary,
                                     "--gtest_filter=ZygoteProbe." + launch.probe_case};
    std::vector<std::string> env = environment_for(launch);
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    for (auto& e : env) envp.push_back(e.data());
    argv.push_back(nullptr);
    envp.push_back(nullptr);
    std::string cwd = launch.cwd.empty() ? root_ : launch.cwd;
    started.launcher = ::fork();
    if (started.launcher == 0) {
      int in = ::open(in_path.c_str(), O_RDONLY);
      int out = ::open(started.out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int err = ::open(started.err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (in < 0 || out < 0 || err < 0 || ::chdir(cwd.c_str()) != 0) std::_Exit(126);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(err, 2);
      if (launch.ignored_signal != 0) ::signal(launch.ignored_signal, SIG_IGN);
      if (launch.file_size_limit >= 0) {
        const rlimit limit{static_cast<rlim_t>(launch.file_size_limit), static_cast<rlim_t>(launch.file_size_limit)};
        if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) std::_Exit(125);
      }
      ::execve(argv[0], argv.data(), envp.data());
      std::_Exit(127);
    }
    return started;
  }

  static Outcome finish(const Launched& started) {
    Outcome o;
    o.launcher = started.launcher;
    ::waitpid(started.launcher, &o.status, 0);
    o.out = read_file(started.out_path);
    o.err = read_file(started.err_path);
    o.probe = probe_lines(o.out);
    return o;
  }

  Outcome run(const Launch& launch) { return finish(start(launch)); }

  std::string root_;
  std::string zygote_dir_;
  int counter_ = 0;
};

TEST_F(ZygoteTest, RunsEachCaseInAFreshForkOfOneZygote) {
  Outcome a = run({"Report"});
  Outcome b = run({"Report"});
  ASSERT_TRUE(a.exited_with(0)) << a.out << a.err;
  ASSERT_TRUE(b.exited_with(0)) << b.out << b.err;
  EXPECT_NE(a.pid(), a.launcher) << "the first case ran without the zygote: " << a.err;
  EXPECT_NE(b.pid(), b.launcher) << "the second case ran without the zygote: " << b.err;
  EXPECT_NE(a.pid(), b.pid());
  EXPECT_EQ(a.ppid(), b.ppid()) << "two zygotes for one binary";
  EXPECT_NE(a.ppid(), a.launcher);
  EXPECT_NE(a.out.find("[  PASSED  ] 1 test"), std::string::npos) << a.out;
  EXPECT_EQ(b.probe["atexit"], "ran") << "the exit handler registered by the case did not run: " << b.out;
}

TEST_F(ZygoteTest, GivesTheChildTheLaunchersEnvironmentWorkingDirectoryAndStdin) {
  Outcome first = run({"Report", {"LATMIX_PROBE_FIRST=zygote's own"}});  // starts the zygote
  ASSERT_TRUE(first.exited_with(0)) << first.err;
  EXPECT_EQ(first.probe["first"], "zygote's own");
  fs::create_directories(root_ + "/elsewhere");
  Launch second{"Report", {"LATMIX_PROBE_VALUE=hello world"}, root_ + "/elsewhere"};
  Outcome b = run(second);
  ASSERT_TRUE(b.exited_with(0)) << b.err;
  EXPECT_EQ(b.ppid(), first.ppid()) << "the second case did not run in the same zygote: " << b.err;
  EXPECT_EQ(b.probe["value"], "hello world");
  EXPECT_EQ(b.probe["first"], "(unset)") << "the child kept the zygote's environment";
  EXPECT_EQ(fs::canonical(b.probe["cwd"]), fs::canonical(root_ + "/elsewhere"));

  Launch reading{"Stdin"};
  reading.stdin_text = "a line on stdin\n";
  Outcome c = run(reading);
  ASSERT_TRUE(c.exited_with(0)) << c.err;
  EXPECT_EQ(c.ppid(), first.ppid());
  EXPECT_EQ(c.probe["stdin"], "a line on stdin");
}

TEST_F(ZygoteTest, ACrashFailsThatCaseOnlyAndNamesTheSignal) {
  Outcome crash = run({"Crash"});
  EXPECT_NE(crash.pid(), crash.launcher) << "the crash ran without the zygote: " << crash.err;
  ASSERT_TRUE(WIFSIGNALED(crash.status)) << "status " << crash.status << ": " << crash.err;
  EXPECT_EQ(WTERMSIG(crash.status), SIGSEGV);
  EXPECT_NE(crash.err.find("SIGSEGV"), std::string::npos) << crash.err;

  Outcome after = run({"Report"});
  ASSERT_TRUE(after.exited_with(0)) << after.err;
  EXPECT_EQ(after.ppid(), crash.ppid()) << "the zygote did not survive its child's crash";

  Outcome failing = run({"Fail"});
  EXPECT_TRUE(failing.exited_with(1)) << "status " << failing.status;
  EXPECT_EQ(failing.ppid(), crash.ppid());
  EXPECT_NE(failing.out.find("the probe fails on purpose"), std::string::npos) << failing.out;
}

TEST_F(ZygoteTest, RunsTheBinaryItselfWhenTheSocketDirectoryIsUnusable) {
  std::ofstream(root_ + "/a-file") << "not a directory";
  Launch on_a_file{"Report"};
  on_a_file.zygote_dir = root_ + "/a-file";
  Outcome a = run(on_a_file);
  ASSERT_TRUE(a.exited_with(0)) << a.err;
  EXPECT_EQ(a.pid(), a.launcher) << "expected the launcher to exec the binary";
  EXPECT_NE(a.err.find("runs without its zygote"), std::string::npos) << a.err;

  Launch too_long{"Report"};
  too_long.zygote_dir = root_ + "/" + std::string(100, 'd');
  Outcome b = run(too_long);
  ASSERT_TRUE(b.exited_with(0)) << b.err;
  EXPECT_EQ(b.pid(), b.launcher);

  fs::create_directories(root_ + "/shared");
  fs::permissions(root_ + "/shared", fs::perms::all);  // writable by others: another user could plant a socket
  Launch shared{"Fail"};
  shared.zygote_dir = root_ + "/shared";
  Outcome c = run(shared);
  EXPECT_TRUE(c.exited_with(1)) << "status " << c.status;
  EXPECT_EQ(c.pid(), c.launcher);

  Outcome d = run({"Report", {"LATMIX_TEST_ZYGOTE=0"}});
  ASSERT_TRUE(d.exited_with(0)) << d.err;
  EXPECT_EQ(d.pid(), d.launcher);
  EXPECT_FALSE(fs::exists(zygote_dir_)) << "LATMIX_TEST_ZYGOTE=0 still looked for a zygote";
}

// A variable read before main (GTEST_*, OMP_NUM_THREADS, ...) cannot change in a fork: a launcher
// under another value gets a zygote of its own, and both keep serving.
TEST_F(ZygoteTest, StartsAnotherZygoteForOtherLoadTimeVariables) {
  Outcome a = run({"Report"});
  Outcome b = run({"Report", {"GTEST_LATMIX_PROBE_MARK=1"}});  // GoogleTest reads GTEST_* before main
  Outcome c = run({"Report"});
  Outcome d = run({"Report", {"GTEST_LATMIX_PROBE_MARK=1"}});
  for (const Outcome* o : {&a, &b, &c, &d}) {
    ASSERT_TRUE(o->exited_with(0)) << o->err;
    EXPECT_NE(o->pid(), o->launcher) << "ran without a zygote: " << o->err;
  }
  EXPECT_NE(a.ppid(), b.ppid()) << "a fork of a zygote started without the variable ran the case";
  EXPECT_EQ(a.ppid(), c.ppid());
  EXPECT_EQ(b.ppid(), d.ppid());
}

TEST_F(ZygoteTest, KillsTheCaseWhenItsLauncherIsKilled) {
  Launched sleeping = start({"Sleep"});
  std::map<std::string, std::string> facts;
  ASSERT_TRUE(eventually([&] {
    facts = probe_lines(read_file(sleeping.out_path));
    return facts.count("ppid") > 0;
  })) << read_file(sleeping.err_path);
  pid_t child = std::stoi(facts["pid"]);
  ASSERT_NE(child, sleeping.launcher);
  ::kill(sleeping.launcher, SIGKILL);  // what ctest does at a timeout
  Outcome killed = finish(sleeping);
  EXPECT_TRUE(WIFSIGNALED(killed.status));
  EXPECT_TRUE(eventually([&] { return process_gone(child); })) << "the case outlived its launcher";
  Outcome after = run({"Report"});
  EXPECT_TRUE(after.exited_with(0)) << after.err;
  EXPECT_EQ(after.ppid(), std::stoi(facts["ppid"]));
}

// What `kill -TERM $!` or `timeout` does to a latmix of a shell test: the signal reaches the child,
// whose handler runs (an export cancels and removes its temp folder), and the launcher exits as it.
TEST_F(ZygoteTest, PassesTheSignalsSentToTheLauncherOnToTheCase) {
  for (int sig : {SIGTERM, SIGINT}) {
    Launch launch{"Signals"};
    launch.ignored_signal = sig == SIGINT ? SIGINT : 0;  // bash starts `cmd &` with SIGINT ignored
    Launched waiting = start(launch);
    std::map<std::string, std::string> facts;
    ASSERT_TRUE(eventually([&] {
      facts = probe_lines(read_file(waiting.out_path));
      return facts.count("ready") > 0;
    })) << read_file(waiting.err_path);
    ASSERT_NE(std::stoi(facts["pid"]), waiting.launcher) << "the case ran without the zygote";
    ::kill(waiting.launcher, sig);
    Outcome o = finish(waiting);
    EXPECT_TRUE(o.exited_with(0)) << "signal " << sig << ": " << o.out << o.err;
    EXPECT_EQ(o.probe["handled"], std::to_string(sig)) << o.out;
  }
}

// The signals a launcher ignores and its resource limits survive an exec, so the child has them:
// cli_export's full disk is `trap '' XFSZ; ulimit -f 4096; exec latmix export ...`.
TEST_F(ZygoteTest, GivesTheChildTheLaunchersIgnoredSignalsAndLimits) {
  Outcome plain = run({"Signals", {"LATMIX_PROBE_NO_WAIT=1"}});  // starts the zygote: nothing ignored, no limit
  Launch limited{"Signals"};
  limited.ignored_signal = SIGXFSZ;
  limited.file_size_limit = 4096 * 1024;
  Launched started = start(limited);
  ASSERT_TRUE(eventually([&] { return probe_lines(read_file(started.out_path)).count("ready") > 0; }));
  ::kill(started.launcher, SIGTERM);
  Outcome o = finish(started);
  ASSERT_TRUE(o.exited_with(0)) << o.out << o.err;
  EXPECT_NE(o.pid(), o.launcher) << "the case ran without the zygote: " << o.err;
  EXPECT_EQ(o.ppid(), plain.ppid()) << "not a fork of the first case's zygote";
  EXPECT_EQ(o.probe["xfsz"], "ignored");
  EXPECT_EQ(o.probe["fsize"], std::to_string(4096 * 1024));
  EXPECT_EQ(plain.probe["xfsz"], "default");
  EXPECT_EQ(plain.probe["fsize"], "unlimited");
}

TEST_F(ZygoteTest, StartsOneZygoteForLaunchersStartingTogether) {
  std::vector<Launched> started;
  started.reserve(4);
  for (int i = 0; i < 4; ++i) started.push_back(start({"Report"}));
  std::vector<Outcome> outcomes;
  outcomes.reserve(started.size());
  for (const auto& s : started) outcomes.push_back(finish(s));
  for (const auto& o : outcomes) {
    ASSERT_TRUE(o.exited_with(0)) << o.err;
    EXPECT_NE(o.pid(), o.launcher) << o.err;
    EXPECT_EQ(o.ppid(), outcomes[0].ppid()) << "more than one zygote for one binary";
  }
}

TEST_F(ZygoteTest, StartsAFreshZygoteWhenTheBinaryIsRebuilt) {
  fs::create_directories(root_ + "/bin");
  std::string binary = root_ + "/bin/probe";
  fs::copy_file(LATMIX_ZYGOTE_PROBE, binary);
  Launch launch{"Report"};
  launch.binary = binary;
  Outcome before = run(launch);
  ASSERT_TRUE(before.exited_with(0)) << before.err;
  pid_t old_zygote = before.ppid();
  ASSERT_NE(before.pid(), before.launcher) << before.err;

  fs::copy_file(LATMIX_ZYGOTE_PROBE, binary + ".new");  // as a linker does: a new file in its place
  fs::rename(binary + ".new", binary);
  Outcome after = run(launch);
  ASSERT_TRUE(after.exited_with(0)) << after.err;
  EXPECT_NE(after.pid(), after.launcher) << after.err;
  EXPECT_NE(after.ppid(), old_zygote) << "the zygote of the old build ran the new build's case";
  EXPECT_TRUE(eventually([&] { return process_gone(old_zygote); })) << "the old zygote stayed";
}

TEST_F(ZygoteTest, ExitsWhenItsSocketIsRemoved) {
  Outcome a = run({"Report"});
  ASSERT_TRUE(a.exited_with(0)) << a.err;
  ASSERT_NE(a.pid(), a.launcher) << a.err;
  fs::remove_all(zygote_dir_);
  EXPECT_TRUE(eventually([&] { return process_gone(a.ppid()); })) << "the zygote outlived its socket";
}

// Without --latmix-zygote the custom main is GoogleTest's: flags, listing, exit codes.
TEST(ZygoteMain, RunsLikeGtestMainWithoutTheOption) {
  std::string out_dir = latmix::test::temp_dir("zmain");
  ASSERT_EQ(std::system((std::string(LATMIX_ZYGOTE_PROBE) + " --gtest_list_tests > " + out_dir + "/list").c_str()), 0);
  std::string listed = read_file(out_dir + "/list");
  EXPECT_EQ(listed.rfind("ZygoteProbe.\n  Report\n", 0), 0u) << listed;
  int failed = std::system((std::string(LATMIX_ZYGOTE_PROBE) + " --gtest_filter=ZygoteProbe.Fail > /dev/null").c_str());
  EXPECT_TRUE(WIFEXITED(failed) && WEXITSTATUS(failed) == 1) << failed;
}

}  // namespace
