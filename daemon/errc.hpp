#pragma once
// The daemon's error codes on the I/O path (no exceptions there), with a std::error_category,
// and their mapping to wire::ErrorCode (the reason table sent to clients).
//
// Every property of a code (its metric label, its message, its wire code and whether the connection
// is closed after it) comes from the one table FILTERD_ERRC below; nothing else lists the codes.

#include "protocol/filterd_generated.h"

#include <cstddef>
#include <string>
#include <system_error>

namespace filterd {

// X(name, wire code, closes the connection, message). `name` is the enumerator and the metric label;
// the wire code is sent to the client in an Error frame (protocol/filterd.fbs is the contract); when
// the connection closes, the Error is the last frame on it. Values start at 1, in this order.
#define FILTERD_ERRC(X)                                                                                      \
    /* length prefix above the negotiated maximum */                                                         \
    X(frame_too_large, FrameTooLarge, true, "frame length exceeds the negotiated maximum")                   \
    /* zero length, bad identifier, Verifier failure or missing union */                                     \
    X(malformed_frame, Malformed, true, "frame failed verification")                                         \
    /* first frame was not a Hello */                                                                        \
    X(hello_required, HelloRequired, true, "the first frame on a connection must be Hello")                  \
    /* no common protocol version */                                                                         \
    X(version_mismatch, VersionMismatch, true, "no common protocol version")                                 \
    /* a frame type the client must not send (HelloAck, FilterResponse, ...) */                              \
    X(unexpected_frame, Malformed, true, "frame type not allowed from a client")                             \
    /* request id 0 (reserved for connection-level errors) */                                                \
    X(bad_request_id, Malformed, true, "request id 0 is reserved for connection errors")                     \
    /* per-connection in-flight bound reached */                                                             \
    X(overloaded, Overloaded, false, "too many requests in flight on this connection")                       \
    /* budget spent before the filters ran */                                                                \
    X(deadline_exceeded, DeadlineExceeded, false, "deadline budget spent before the filters ran")            \
    X(unknown_route, UnknownRoute, false, "route is not configured")                                         \
    X(unknown_filter, UnknownFilter, false, "filter is not configured for the route")                        \
    X(shutting_down, ShuttingDown, false, "daemon is shutting down")                                         \
    /* SO_PEERCRED uid not in listen.allowed_uids */                                                         \
    X(peer_not_allowed, Unspecified, true, "peer uid is not allowed")                                        \
    /* peer stopped in the middle of a frame or the handshake */                                             \
    X(stalled, Malformed, true, "peer stalled in the middle of a frame")                                     \
    X(too_many_connections, Overloaded, true, "connection limit reached")                                    \
    /* a verified FilterRequest whose fields contradict each other (e.g. body and body_sha256) */            \
    X(malformed_request, Malformed, false, "request fields are inconsistent")                                \
    /* the request's filter list is not the list its route requires */                                       \
    X(filters_mismatch, UnknownFilter, false, "the filter list differs from the filters the route requires") \
    /* an idle connection closed to admit a new one at max_connections */                                    \
    X(connection_evicted, Overloaded, true, "idle connection closed to make room for a new one")

/// Position of each code in FILTERD_ERRC, from 0.
enum class errc_index {
#define FILTERD_ERRC_INDEX(name, wire_code, closes, message) name,
    FILTERD_ERRC(FILTERD_ERRC_INDEX)
#undef FILTERD_ERRC_INDEX
};

/// Position + 1: an error_code of 0 means success, so no code is 0.
enum class errc {
#define FILTERD_ERRC_ENUM(name, wire_code, closes, message) name = static_cast<int>(errc_index::name) + 1,
    FILTERD_ERRC(FILTERD_ERRC_ENUM)
#undef FILTERD_ERRC_ENUM
};

const std::error_category& filterd_category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), filterd_category()}; }

/// The wire code sent for `e`; wire::ErrorCode::Internal for a value outside the table.
wire::ErrorCode to_wire(errc e) noexcept;
/// True when the daemon closes the connection after reporting `e`.
bool closes_connection(errc e) noexcept;

/// Every errc value, in table order, for tests and metrics.
inline constexpr errc all_errc[] = {
#define FILTERD_ERRC_VALUE(name, wire_code, closes, message) errc::name,
    FILTERD_ERRC(FILTERD_ERRC_VALUE)
#undef FILTERD_ERRC_VALUE
};

/// Short metric label for `e` (e.g. "frame_too_large"); nullptr for a value outside the table.
const char* errc_label(errc e) noexcept;

}  // namespace filterd

template <>
struct std::is_error_code_enum<filterd::errc> : std::true_type {};
