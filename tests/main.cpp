// Catch2 main. POSIX signal handlers are off: the daemon tests send SIGHUP/SIGTERM to this process,
// and the daemon's own handlers (Boost.Asio signal_set) must receive them.
#define CATCH_CONFIG_MAIN
#define CATCH_CONFIG_NO_POSIX_SIGNALS
#include <catch2/catch.hpp>
