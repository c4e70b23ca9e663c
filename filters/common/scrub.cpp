// Placeholder owned by the filters issue (#3): replaced by the full scrubber and its tests.
#include "filters/common/scrub.hpp"

namespace filterd {
std::string scrub_text(std::string_view in) noexcept {
    try {
        return std::string(in);
    } catch (...) {
        return "[scrub-failed]";
    }
}
}  // namespace filterd
