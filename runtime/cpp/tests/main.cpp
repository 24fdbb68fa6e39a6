// The C++ ring tests' entry point:
//
//   ring_test [--golden DIR] [--list] [NAME-SUBSTRING...]
//
// runs the registered tests (ring_test.cpp, threaded_test.cpp; whichever
// were linked in) whose names contain an argument, or all, and then fails
// if any segment this process named is left in /dev/shm.
#include <csignal>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <dirent.h>
#include <unistd.h>

#include "fixtures.hpp"
#include "harness.hpp"

namespace {

/// Segments named by this process (fixtures::RingName) still in /dev/shm.
std::vector<std::string> leftovers() {
    std::vector<std::string> out;
    const std::string prefix = "t-cpp-" + std::to_string(::getpid()) + "-";
    if (DIR* d = ::opendir("/dev/shm")) {
        while (const dirent* e = ::readdir(d)) {
            if (std::string_view(e->d_name).starts_with(prefix)) out.emplace_back(e->d_name);
        }
        ::closedir(d);
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<char*> args(argv + 1, argv + argc);
    if (args.size() >= 2 && std::string_view(args[0]) == "--golden") {
        fixtures::golden_dir = args[1];
        args.erase(args.begin(), args.begin() + 2);
    }
    std::signal(SIGPIPE, SIG_IGN);  // a test's peer process may exit first
    int status = harness::run(args);
    if (const auto left = leftovers(); !left.empty()) {
        std::printf("FAIL\tsegments left in /dev/shm:");
        for (const auto& l : left) std::printf(" %s", l.c_str());
        std::printf("\n");
        status = 1;
    }
    return status;
}
