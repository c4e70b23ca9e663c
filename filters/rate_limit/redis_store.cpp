#include "filters/rate_limit/redis_store.hpp"

namespace filterd::rate_limit {

namespace {

// Times are split into (seconds, nanoseconds) so that Lua's doubles stay exact: only differences
// (bounded by tau + T < 2^53 ns) are ever formed in nanoseconds.
const char* const gcra_lua = R"lua(
local first = 1
if ARGV[1] == '1' then
  if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) then
    return {1}
  end
  first = 2
end
local now_s, now_n
if ARGV[3] == '' then
  local t = redis.call('TIME')
  now_s = tonumber(t[1])
  now_n = tonumber(t[2]) * 1000
else
  now_s = tonumber(string.sub(ARGV[3], 1, -10)) or 0
  now_n = tonumber(string.sub(ARGV[3], -9))
end
local out = {0}
local ahead = {}
local all = true
for i = first, #KEYS do
  local j = i - first
  local T = tonumber(ARGV[4 + 2 * j])
  local tau = tonumber(ARGV[5 + 2 * j])
  local base = 0
  local v = redis.call('GET', KEYS[i])
  if v then
    local d = ((tonumber(string.sub(v, 1, -10)) or 0) - now_s) * 1000000000 + (tonumber(string.sub(v, -9)) - now_n)
    if d > 0 then base = d end
  end
  local a = base + T
  if a <= tau then
    ahead[i] = a
    out[#out + 1] = 1
    out[#out + 1] = math.floor((tau - a) / T)
    out[#out + 1] = 0
    out[#out + 1] = a
  else
    all = false
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = a - tau
    out[#out + 1] = base
  end
end
if all then
  for i = first, #KEYS do
    local total = now_n + ahead[i]
    local carry = math.floor(total / 1000000000)
    local tat = string.format('%d%09d', now_s + carry, total - carry * 1000000000)
    local ttl = math.ceil(ahead[i] / 1000000)
    if ttl < 1 then ttl = 1 end
    redis.call('SET', KEYS[i], tat, 'PX', ttl)
  end
end
return out
)lua";

}  // namespace

const std::shared_ptr<const redis::script>& gcra_script() {
    static const std::shared_ptr<const redis::script> s = std::make_shared<const redis::script>(gcra_lua);
    return s;
}

}  // namespace filterd::rate_limit
