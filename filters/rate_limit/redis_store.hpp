#pragma once
// The shared (Redis) store of the rate-limit filter: key layout, the GCRA script and its contract.
//
// Keys (docs/filters/rate-limit.md):
//   merchant_id  filterd:{m:<merchant>}:rl:<policy>
//   key_id       filterd:{m:<merchant>}:rl:<policy>:<key id>
//   client_ip    filterd:{ip:<ip>}:rl:<policy>
//   route        filterd:{r:<route>}:rl:<policy>
//   header       filterd:{h:<header name>:<value>}:rl:<policy>
// Values pass through redis::key_part (long or unusual values become "~<sha256>"). A key holds the
// TAT as decimal nanoseconds since the Unix epoch and expires (PX) when the TAT passes: an expired
// key carries no information (gcra.hpp), so Redis memory follows the active keys only.
//
// The script (one EVALSHA per request, nonce included):
//   KEYS   [nonce key]? then one GCRA key per policy, in route order
//   ARGV[1] "1" when KEYS[1] is a nonce key, else "0"
//   ARGV[2] the nonce's time to live in ms (ignored without a nonce)
//   ARGV[3] now as decimal ns since the epoch, or "" for Redis TIME
//   ARGV[4 + 2i], ARGV[5 + 2i]  T and tau (ns) of policy i
//   Returns {1} when the nonce exists (a replay: nothing else is read or written). Otherwise the
//   nonce is set (SET NX PX) and {0, allowed_0, remaining_0, retry_after_ns_0, reset_ns_0, ...}:
//   the decision of gcra_decide for each policy; the new TATs are written only if every policy
//   allows (all or none). Arithmetic is exact while tau + T < 2^53 ns (checked at config load).

#include "filters/common/redis.hpp"

#include <memory>
#include <string>

namespace filterd::rate_limit {

/// The GCRA script (its SHA-1 is what EVALSHA sends).
const std::shared_ptr<const redis::script>& gcra_script();

}  // namespace filterd::rate_limit
