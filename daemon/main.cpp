// filterd: the out-of-process filter daemon beside the gateway. See README.md and docs/operations.md.
#include "daemon/app.hpp"

int main(int argc, char** argv) {
    filterd::options opt;
    int code = 0;
    if (!filterd::parse_options(argc, argv, opt, code))
        return code;
    return filterd::run_daemon(opt);
}
