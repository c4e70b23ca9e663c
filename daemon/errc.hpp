#pragma once
// The daemon's error codes on the I/O path (no exceptions there), with a std::error_category,
// and their mapping to wire::ErrorCode (the reason table sent to clients).

#include "protocol/filterd_generated.h"

#include <string>
#include <system_error>

namespace filterd {

enum class errc {
    frame_too_large = 1,  ///< length prefix above the negotiated maximum
    malformed_frame,      ///< zero length, bad identifier, Verifier failure or missing union
    hello_required,       ///< first frame was not a Hello
    version_mismatch,     ///< no common protocol version
    unexpected_frame,     ///< a frame type the client must not send (HelloAck, FilterResponse, ...)
    bad_request_id,       ///< request id 0 (reserved for connection-level errors)
    overloaded,           ///< per-connection in-flight bound reached
    deadline_exceeded,    ///< budget spent before the filters ran
    unknown_route,
    unknown_filter,
    shutting_down,
    peer_not_allowed,     ///< SO_PEERCRED uid not in listen.allowed_uids
    stalled,              ///< peer stopped in the middle of a frame or the handshake
    too_many_connections,
    malformed_request,    ///< a verified FilterRequest whose fields contradict each other (e.g. body and body_sha256)
    filters_mismatch,     ///< the request's filter list is not the list its route requires
    connection_evicted,   ///< an idle connection closed to admit a new one at max_connections
};

const std::error_category& filterd_category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), filterd_category()}; }

/// The wire code sent for `e`. Connection-level errors map to codes that are followed by a close.
wire::ErrorCode to_wire(errc e) noexcept;
/// True when the daemon closes the connection after reporting `e`.
bool closes_connection(errc e) noexcept;

/// Every errc value, for tests and metrics.
inline constexpr errc all_errc[] = {
    errc::frame_too_large, errc::malformed_frame, errc::hello_required,   errc::version_mismatch,
    errc::unexpected_frame, errc::bad_request_id, errc::overloaded,       errc::deadline_exceeded,
    errc::unknown_route,    errc::unknown_filter, errc::shutting_down,    errc::peer_not_allowed,
    errc::stalled,          errc::too_many_connections, errc::malformed_request, errc::filters_mismatch,
    errc::connection_evicted,
};

/// Short metric label for `e` (e.g. "frame_too_large").
const char* errc_label(errc e) noexcept;

}  // namespace filterd

template <>
struct std::is_error_code_enum<filterd::errc> : std::true_type {};
