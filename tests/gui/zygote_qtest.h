#pragma once
// LATMIX_QTEST_MAIN(TestObject): QTEST_MAIN, and the test zygote's main (tests/support/
// zygote_protocol.h) for the Qt Test binaries that ctest runs once per test function: run as
// `BINARY --latmix-zygote=SOCKET` the binary pays LibTorch's and Qt's loading once (about 0.7-1.4 s
// of CPU a process) and runs each function in a fork, through latmix_test_launch
// (tests/gui/CMakeLists.txt, latmix_add_qtest_cases). The QApplication is made in the fork, as
// QTEST_MAIN makes it: the zygote starts no thread and holds no Qt object.
#include <QtTest/QtTest>

#include "zygote_server.h"

#define LATMIX_QTEST_MAIN(TestObject)                                                        \
  namespace {                                                                                \
  int latmix_qtest_cases(int argc, char* argv[]) {                                           \
    QT_PREPEND_NAMESPACE(QTest::Internal::callInitMain)<TestObject>();                       \
    QTEST_MAIN_SETUP()                                                                       \
    TestObject tc;                                                                           \
    QTEST_SET_MAIN_SOURCE_PATH                                                               \
    return QTest::qExec(&tc, argc, argv);                                                    \
  }                                                                                          \
  }                                                                                          \
  int main(int argc, char* argv[]) {                                                         \
    if (auto options = latmix::zygote::zygote_mode(argc, argv)) {                            \
      return latmix::zygote::serve(*options, latmix_qtest_cases);                            \
    }                                                                                        \
    return latmix_qtest_cases(argc, argv);                                                   \
  }
