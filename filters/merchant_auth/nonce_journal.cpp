#include "filters/merchant_auth/nonce_journal.hpp"

#include "core/fd_io.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

namespace filterd::merchant_auth {

namespace {

constexpr std::size_t head_bytes = 2 + 8;
constexpr std::size_t crc_bytes = 4;
constexpr std::size_t max_record = head_bytes + 64 + 128 + crc_bytes;
constexpr std::string_view prefix = "nonces-";
constexpr std::string_view suffix = ".log";

constexpr std::array<std::uint32_t, 256> crc_table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        t[i] = c;
    }
    return t;
}();

std::uint32_t crc32(const unsigned char* p, std::size_t n) noexcept {
    std::uint32_t c = 0xffffffffu;
    for (std::size_t i = 0; i < n; ++i)
        c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

bool valid_lengths(std::size_t m, std::size_t n) noexcept { return m >= 1 && m <= 64 && n >= 16 && n <= 128; }

/// Writes the record into `out` (at least max_record bytes); returns its size, 0 if the lengths are invalid.
std::size_t encode_into(unsigned char* out, std::string_view merchant, std::string_view nonce,
                        std::int64_t ts) noexcept {
    if (!valid_lengths(merchant.size(), nonce.size()))
        return 0;
    out[0] = static_cast<unsigned char>(merchant.size());
    out[1] = static_cast<unsigned char>(nonce.size());
    auto u = static_cast<std::uint64_t>(ts);
    for (int i = 0; i < 8; ++i)
        out[2 + i] = static_cast<unsigned char>(u >> (8 * i));
    std::memcpy(out + head_bytes, merchant.data(), merchant.size());
    std::memcpy(out + head_bytes + merchant.size(), nonce.data(), nonce.size());
    std::size_t body = head_bytes + merchant.size() + nonce.size();
    std::uint32_t c = crc32(out, body);
    for (int i = 0; i < 4; ++i)
        out[body + static_cast<std::size_t>(i)] = static_cast<unsigned char>(c >> (8 * i));
    return body + crc_bytes;
}

std::string sys_error(const std::string& what, int err) { return what + ": " + std::strerror(err); }

/// Segment files in `dir`, by sequence number.
std::vector<std::pair<std::uint64_t, std::string>> list_segments(const std::string& dir) {
    std::vector<std::pair<std::uint64_t, std::string>> out;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr)
        throw std::runtime_error(sys_error("cannot list " + dir, errno));
    while (dirent* e = ::readdir(d)) {
        std::string_view name = e->d_name;
        if (name.size() <= prefix.size() + suffix.size() || name.substr(0, prefix.size()) != prefix ||
            name.substr(name.size() - suffix.size()) != suffix)
            continue;
        std::string_view digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
        if (digits.size() > 20 ||
            !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
            continue;
        std::uint64_t seq = 0;
        try {
            seq = std::stoull(std::string(digits));
        } catch (const std::out_of_range&) {
            continue;
        }
        out.emplace_back(seq, dir + "/" + std::string(name));
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

std::string nonce_journal::encode(std::string_view merchant, std::string_view nonce, std::int64_t timestamp_s) {
    unsigned char buf[max_record];
    std::size_t n = encode_into(buf, merchant, nonce, timestamp_s);
    return std::string(reinterpret_cast<const char*>(buf), n);
}

nonce_journal::nonce_journal(journal_options opt) : opt_(std::move(opt)) {
    if (opt_.dir.empty())
        throw std::runtime_error("the journal directory must not be empty");
    if (::mkdir(opt_.dir.c_str(), 0700) != 0 && errno != EEXIST)
        throw std::runtime_error(sys_error("cannot create " + opt_.dir, errno));
    struct stat st {};
    if (::lstat(opt_.dir.c_str(), &st) != 0)
        throw std::runtime_error(sys_error("cannot stat " + opt_.dir, errno));
    if (!S_ISDIR(st.st_mode))
        throw std::runtime_error(opt_.dir + " is not a directory (symbolic links are refused)");
    if (st.st_uid != ::geteuid())
        throw std::runtime_error(opt_.dir + " is owned by uid " + std::to_string(st.st_uid) + ", not by filterd (uid " +
                                 std::to_string(::geteuid()) + ")");
    if (st.st_mode & 022)
        throw std::runtime_error(opt_.dir + " is writable by group or others; it must be 0700 (or 0750)");
}

nonce_journal::~nonce_journal() {
    if (fd_ >= 0)
        ::close(fd_);
}

nonce_journal::replay_stats
nonce_journal::replay(const std::function<void(std::string_view, std::string_view, std::int64_t)>& f,
                      std::int64_t now_s) {
    std::lock_guard lock(mu_);
    replay_stats stats;
    for (const auto& [seq, path] : list_segments(opt_.dir)) {
        seq_ = std::max(seq_, seq);
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            throw std::runtime_error(sys_error("cannot open " + path, errno));
        struct stat st {};
        ::fstat(fd, &st);
        std::string data;
        char buf[64 * 1024];
        for (;;) {
            ssize_t r = ::read(fd, buf, sizeof buf);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                int err = errno;
                ::close(fd);
                throw std::runtime_error(sys_error("cannot read " + path, err));
            }
            if (r == 0)
                break;
            data.append(buf, static_cast<std::size_t>(r));
        }
        ::close(fd);
        ++stats.segments;
        std::size_t p = 0;
        bool damaged = false;
        while (p < data.size()) {
            const auto* u = reinterpret_cast<const unsigned char*>(data.data()) + p;
            std::size_t left = data.size() - p;
            if (left < head_bytes || !valid_lengths(u[0], u[1]) || left < head_bytes + u[0] + u[1] + crc_bytes) {
                damaged = true;
                break;
            }
            std::size_t body = head_bytes + u[0] + u[1];
            std::uint32_t want = 0;
            for (int i = 0; i < 4; ++i)
                want |= std::uint32_t{u[body + static_cast<std::size_t>(i)]} << (8 * i);
            if (crc32(u, body) != want) {
                damaged = true;
                break;
            }
            std::uint64_t ts = 0;
            for (int i = 0; i < 8; ++i)
                ts |= std::uint64_t{u[2 + i]} << (8 * i);
            f(std::string_view(reinterpret_cast<const char*>(u) + head_bytes, u[0]),
              std::string_view(reinterpret_cast<const char*>(u) + head_bytes + u[0], u[1]),
              static_cast<std::int64_t>(ts));
            ++stats.records;
            p += body + crc_bytes;
        }
        if (damaged) {
            ++stats.damaged_segments;
            stats.damaged_mtime_s = std::max<std::int64_t>(stats.damaged_mtime_s, st.st_mtim.tv_sec);
        }
        closed_.push_back({path, data.size(), static_cast<std::int64_t>(st.st_mtim.tv_sec)});
        closed_bytes_ += data.size();
    }
    // The first segment is created by the first append, so a start that records nothing (a --check, a
    // config test) leaves no file behind; whether one could be created is checked now.
    (void)now_s;
    if (::access(opt_.dir.c_str(), W_OK | X_OK) != 0)
        throw std::runtime_error(sys_error("cannot write to " + opt_.dir, errno));
    return stats;
}

bool nonce_journal::open_segment(std::int64_t now_s) noexcept {
    // O_EXCL: a segment is never appended to by two writers; a name taken by another process (a
    // `filterd --check` next to the running daemon) moves on to the next number.
    std::string path;
    int fd = -1;
    for (int attempt = 0; attempt < 64 && fd < 0; ++attempt) {
        char name[48];
        std::snprintf(name, sizeof name, "/nonces-%020llu.log", static_cast<unsigned long long>(++seq_));
        path = opt_.dir + name;
        fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 && errno != EEXIST)
            return false;
    }
    if (fd < 0)
        return false;
    fd_ = fd;
    current_path_ = std::move(path);
    current_bytes_ = 0;
    current_started_s_ = now_s;
    current_last_append_s_ = now_s;
    return true;
}

void nonce_journal::rotate_and_compact(std::int64_t now_s, std::int64_t skew_s) noexcept {
    if (fd_ >= 0 && (now_s - current_started_s_ >= skew_s || current_bytes_ >= opt_.max_bytes / 4)) {
        ::close(fd_);
        fd_ = -1;
        if (current_bytes_ == 0) {
            ::unlink(current_path_.c_str());
        } else {
            closed_.push_back({current_path_, current_bytes_, current_last_append_s_});
            closed_bytes_ += current_bytes_;
        }
        current_bytes_ = 0;
    }
    // Every entry of a segment whose newest record is older than 2 * skew has expired.
    std::size_t keep = 0;
    for (std::size_t i = 0; i < closed_.size(); ++i) {
        if (now_s > closed_[i].last_append_s + 2 * skew_s && ::unlink(closed_[i].path.c_str()) == 0) {
            closed_bytes_ -= closed_[i].bytes;
            continue;
        }
        if (keep != i)
            closed_[keep] = std::move(closed_[i]);
        ++keep;
    }
    closed_.resize(keep);
}

bool nonce_journal::append(std::string_view merchant, std::string_view nonce, std::int64_t timestamp_s,
                           std::int64_t now_ns, std::int64_t skew_ns) noexcept {
    unsigned char rec[max_record];
    std::size_t n = encode_into(rec, merchant, nonce, timestamp_s);
    if (n == 0)
        return false;
    const std::int64_t now_s = now_ns / 1'000'000'000;
    const std::int64_t skew_s = std::max<std::int64_t>(1, skew_ns / 1'000'000'000);
    std::lock_guard lock(mu_);
    rotate_and_compact(now_s, skew_s);
    if (closed_bytes_ + current_bytes_ + n > opt_.max_bytes)
        return false;
    if (fd_ < 0 && !open_segment(now_s))
        return false;
    if (!fd_io::write_all(fd_, rec, n) || (opt_.fsync && ::fdatasync(fd_) != 0)) {
        // A partial record may be on disk: start a new segment, so later records do not follow it.
        ::close(fd_);
        fd_ = -1;
        closed_.push_back({current_path_, current_bytes_ + n, current_last_append_s_});
        closed_bytes_ += current_bytes_ + n;
        current_bytes_ = 0;
        return false;
    }
    current_bytes_ += n;
    current_last_append_s_ = now_s;
    return true;
}

std::uint64_t nonce_journal::bytes() const noexcept {
    std::lock_guard lock(mu_);
    return closed_bytes_ + current_bytes_;
}

std::size_t nonce_journal::segment_count() const noexcept {
    std::lock_guard lock(mu_);
    return closed_.size() + (fd_ >= 0 ? 1 : 0);
}

}  // namespace filterd::merchant_auth
