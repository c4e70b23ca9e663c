#include "daemon/errc.hpp"

namespace filterd {

const char* errc_label(errc e) noexcept {
    switch (e) {
    case errc::frame_too_large: return "frame_too_large";
    case errc::malformed_frame: return "malformed_frame";
    case errc::hello_required: return "hello_required";
    case errc::version_mismatch: return "version_mismatch";
    case errc::unexpected_frame: return "unexpected_frame";
    case errc::bad_request_id: return "bad_request_id";
    case errc::overloaded: return "overloaded";
    case errc::deadline_exceeded: return "deadline_exceeded";
    case errc::unknown_route: return "unknown_route";
    case errc::unknown_filter: return "unknown_filter";
    case errc::shutting_down: return "shutting_down";
    case errc::peer_not_allowed: return "peer_not_allowed";
    case errc::stalled: return "stalled";
    case errc::too_many_connections: return "too_many_connections";
    case errc::malformed_request: return "malformed_request";
    case errc::filters_mismatch: return "filters_mismatch";
    case errc::connection_evicted: return "connection_evicted";
    }
    return nullptr;
}

namespace {
class category final : public std::error_category {
public:
    const char* name() const noexcept override { return "filterd"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
        case errc::frame_too_large: return "frame length exceeds the negotiated maximum";
        case errc::malformed_frame: return "frame failed verification";
        case errc::hello_required: return "the first frame on a connection must be Hello";
        case errc::version_mismatch: return "no common protocol version";
        case errc::unexpected_frame: return "frame type not allowed from a client";
        case errc::bad_request_id: return "request id 0 is reserved for connection errors";
        case errc::overloaded: return "too many requests in flight on this connection";
        case errc::deadline_exceeded: return "deadline budget spent before the filters ran";
        case errc::unknown_route: return "route is not configured";
        case errc::unknown_filter: return "filter is not configured for the route";
        case errc::shutting_down: return "daemon is shutting down";
        case errc::peer_not_allowed: return "peer uid is not allowed";
        case errc::stalled: return "peer stalled in the middle of a frame";
        case errc::too_many_connections: return "connection limit reached";
        case errc::malformed_request: return "request fields are inconsistent";
        case errc::filters_mismatch: return "the filter list differs from the filters the route requires";
        case errc::connection_evicted: return "idle connection closed to make room for a new one";
        }
        return "unknown filterd error";
    }
};
}  // namespace

const std::error_category& filterd_category() noexcept {
    static const category c;
    return c;
}

wire::ErrorCode to_wire(errc e) noexcept {
    switch (e) {
    case errc::frame_too_large: return wire::ErrorCode::FrameTooLarge;
    case errc::malformed_frame: return wire::ErrorCode::Malformed;
    case errc::hello_required: return wire::ErrorCode::HelloRequired;
    case errc::version_mismatch: return wire::ErrorCode::VersionMismatch;
    case errc::unexpected_frame: return wire::ErrorCode::Malformed;
    case errc::bad_request_id: return wire::ErrorCode::Malformed;
    case errc::overloaded: return wire::ErrorCode::Overloaded;
    case errc::deadline_exceeded: return wire::ErrorCode::DeadlineExceeded;
    case errc::unknown_route: return wire::ErrorCode::UnknownRoute;
    case errc::unknown_filter: return wire::ErrorCode::UnknownFilter;
    case errc::shutting_down: return wire::ErrorCode::ShuttingDown;
    case errc::peer_not_allowed: return wire::ErrorCode::Unspecified;
    case errc::stalled: return wire::ErrorCode::Malformed;
    case errc::too_many_connections: return wire::ErrorCode::Overloaded;
    case errc::malformed_request: return wire::ErrorCode::Malformed;
    case errc::filters_mismatch: return wire::ErrorCode::UnknownFilter;
    case errc::connection_evicted: return wire::ErrorCode::Overloaded;
    }
    return wire::ErrorCode::Internal;
}

bool closes_connection(errc e) noexcept {
    switch (e) {
    case errc::frame_too_large:
    case errc::malformed_frame:
    case errc::hello_required:
    case errc::version_mismatch:
    case errc::unexpected_frame:
    case errc::bad_request_id:
    case errc::peer_not_allowed:
    case errc::stalled:
    case errc::too_many_connections:
    case errc::connection_evicted:
        return true;
    default:
        return false;
    }
}

}  // namespace filterd
