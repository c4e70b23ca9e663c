#pragma once
// The nonce journal: an append-only record of every nonce merchant-auth accepted, so that a restarted
// filterd (kill -9, OOM kill, a Kubernetes container restart) still rejects a replay of a request it
// allowed in the last skew window.
//
// Files: `<dir>/nonces-<seq>.log`, one "segment" written at a time. A record is
//   u8 merchant length (1..64) | u8 nonce length (16..128) | i64 timestamp (little-endian) |
//   merchant | nonce | u32 CRC-32 (IEEE) of everything before it
// and is written with one write(2) (O_APPEND) before the request is answered. A process kill cannot
// tear such a write; only a machine crash or a full disk can, and both are detected by the CRC.
//
// Bounds and compaction: a segment is closed after `skew` seconds or a quarter of max_bytes, and a
// closed segment is deleted once its newest record is more than 2 * skew old: every entry in it has
// expired by then (accepted at t, its timestamp is <= t + skew, and it is live until timestamp + skew).
// The whole journal stays under max_bytes: an append that would pass it fails (the request is denied
// 503) instead of forgetting anything.
//
// Durability: `fsync: false` (the default) relies on the page cache, which a process or container
// restart keeps; a node crash loses the page cache, but it also loses a pod's emptyDir volume, so
// fsync would buy nothing there. `fsync: true` (fdatasync after each record) is for a journal on a
// persistent volume.
//
// Replay at start (replay()): every segment is read in order; each intact record is handed to the
// caller. The first damaged record (bad length, bad CRC, truncated) ends that segment and is reported,
// with the segment's modification time, so the caller can fence requests that a lost record could
// have covered.

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace filterd::merchant_auth {

struct journal_options {
    std::string dir;
    std::uint64_t max_bytes = 256ull << 20;
    bool fsync = false;
};

class nonce_journal {
public:
    /// Opens (creating it 0700 if absent) the journal directory. It must be a directory owned by this
    /// process's effective uid and not writable by group or others. @throws std::runtime_error with a
    /// message for the operator.
    explicit nonce_journal(journal_options opt);
    ~nonce_journal();
    nonce_journal(const nonce_journal&) = delete;
    nonce_journal& operator=(const nonce_journal&) = delete;

    struct replay_stats {
        std::uint64_t records = 0;   ///< intact records read
        std::uint64_t segments = 0;  ///< segment files read
        std::uint64_t damaged_segments = 0;
        std::int64_t damaged_mtime_s = 0;  ///< newest modification time of a damaged segment (Unix s)
    };
    /// Reads every existing segment, oldest first, calling f(merchant, nonce, timestamp_s) per intact
    /// record; the next append starts a new segment. Start-up only. @throws std::runtime_error on I/O
    /// errors, or when the directory is not writable.
    replay_stats replay(const std::function<void(std::string_view, std::string_view, std::int64_t)>& f,
                        std::int64_t now_s);

    /// Appends one record (thread-safe). False when the record could not be written (I/O error, or the
    /// journal would pass max_bytes). Never throws.
    bool append(std::string_view merchant, std::string_view nonce, std::int64_t timestamp_s, std::int64_t now_ns,
                std::int64_t skew_ns) noexcept;

    const journal_options& options() const noexcept { return opt_; }
    /// Bytes in all segments on disk. For tests and metrics.
    std::uint64_t bytes() const noexcept;
    /// Segment files on disk (including the one being written). For tests.
    std::size_t segment_count() const noexcept;

    /// Encodes one record (exposed for tests and the fuzz corpus).
    static std::string encode(std::string_view merchant, std::string_view nonce, std::int64_t timestamp_s);

private:
    struct closed_segment {
        std::string path;
        std::uint64_t bytes;
        std::int64_t last_append_s;
    };
    bool open_segment(std::int64_t now_s) noexcept;
    void rotate_and_compact(std::int64_t now_s, std::int64_t skew_s) noexcept;

    journal_options opt_;
    mutable std::mutex mu_;
    int fd_ = -1;
    std::uint64_t seq_ = 0;
    std::string current_path_;
    std::uint64_t current_bytes_ = 0;
    std::int64_t current_started_s_ = 0;
    std::int64_t current_last_append_s_ = 0;
    std::vector<closed_segment> closed_;
    std::uint64_t closed_bytes_ = 0;
};

}  // namespace filterd::merchant_auth
