#pragma once
// LATMIX_QTEST_MAIN(TestObject): QTEST_MAIN, and the test zygote's main (tests/support/
// zygote_protocol.h) for the Qt Test binaries that ctest runs once per test function: run as
// `BINARY --latmix-zygote=SOCKET` the binary pays LibTorch's and Qt's loading once (about 0.7-1.4 s
// of CPU a process) and runs each function in a fork, through latmix_test_launch
// (tests/gui/CMakeLists.txt, latmix_qtest_zygote). The QApplication is made in the fork, as
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
  int main(int argc, char* argv[]) { return latmix::zygote::main_or_serve(argc, argv, latmix_qtest_cases); }
