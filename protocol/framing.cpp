#include "protocol/framing.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace filterd::proto {

std::string_view to_string(frame_status s) noexcept {
    switch (s) {
    case frame_status::ok: return "ok";
    case frame_status::too_large: return "frame_too_large";
    case frame_status::empty: return "empty_frame";
    case frame_status::bad_identifier: return "bad_identifier";
    case frame_status::verify_failed: return "verify_failed";
    case frame_status::no_body: return "no_body";
    }
    return "unknown";
}

frame_status check_length(std::uint32_t n, std::uint32_t limit) noexcept {
    if (n == 0)
        return frame_status::empty;
    if (n > limit)
        return frame_status::too_large;
    return frame_status::ok;
}

const wire::Frame* verify_frame(std::span<const std::uint8_t> body, frame_status& status) noexcept {
    if (body.size() < 8 || !flatbuffers::BufferHasIdentifier(body.data(), wire::FrameIdentifier())) {
        status = frame_status::bad_identifier;
        return nullptr;
    }
    flatbuffers::Verifier v(body.data(), body.size(), verifier_max_depth, verifier_max_tables);
    if (!wire::VerifyFrameBuffer(v)) {
        status = frame_status::verify_failed;
        return nullptr;
    }
    const wire::Frame* f = wire::GetFrame(body.data());
    if (f->body_type() == wire::Body::NONE || f->body() == nullptr) {
        status = frame_status::no_body;
        return nullptr;
    }
    status = frame_status::ok;
    return f;
}

// Frame bodies are handed out 8-byte aligned in memory: FlatBuffers reads scalars of up to 8 bytes in
// place, and a peer chooses the lengths, so an odd-length frame would otherwise leave the next one
// misaligned (undefined behaviour in every accessor). The buffer keeps `lead` bytes before the first
// length prefix, so a stream of frames whose lengths are multiples of 8 (what FlatBuffers builders
// produce) never needs a move; any other frame is moved once, in next().
namespace {
constexpr std::size_t body_align = 8;
constexpr std::size_t lead = body_align - length_bytes;
static_assert(alignof(std::max_align_t) % body_align == 0, "heap blocks must be 8-byte aligned");
}  // namespace

std::span<std::uint8_t> frame_splitter::prepare(std::size_t min) {
    if (begin_ == end_) {
        begin_ = end_ = lead;
    } else if (begin_ > lead && buf_.size() - end_ < min) {
        std::memmove(buf_.data() + lead, buf_.data() + begin_, end_ - begin_);
        end_ -= begin_ - lead;
        begin_ = lead;
    }
    if (buf_.size() < end_ + min)
        buf_.resize(end_ + min);
    return {buf_.data() + end_, buf_.size() - end_};
}

frame_splitter::next_result frame_splitter::next(std::span<const std::uint8_t>& out, frame_status& err) noexcept {
    std::size_t avail = end_ - begin_;
    if (avail < length_bytes)
        return next_result::need_more;
    std::uint32_t n = read_length(buf_.data() + begin_);
    err = check_length(n, limit_);
    if (err != frame_status::ok)
        return next_result::error;
    if (avail < length_bytes + n)
        return next_result::need_more;
    if (reinterpret_cast<std::uintptr_t>(buf_.data() + begin_ + length_bytes) % body_align != 0) {
        // begin_ >= lead always (prepare() starts there), so this moves the bytes left or not at all.
        std::memmove(buf_.data() + lead, buf_.data() + begin_, avail);
        begin_ = lead;
        end_ = lead + avail;
    }
    out = {buf_.data() + begin_ + length_bytes, n};
    begin_ += length_bytes + n;
    return next_result::frame;
}

std::vector<std::uint8_t> to_frame(const flatbuffers::FlatBufferBuilder& b) {
    std::vector<std::uint8_t> out(length_bytes + b.GetSize());
    write_length(out.data(), static_cast<std::uint32_t>(b.GetSize()));
    std::memcpy(out.data() + length_bytes, b.GetBufferPointer(), b.GetSize());
    return out;
}

namespace {
template <class T>
std::vector<std::uint8_t> finish(flatbuffers::FlatBufferBuilder& b, wire::Body type, flatbuffers::Offset<T> body) {
    auto frame = wire::CreateFrame(b, type, body.Union());
    wire::FinishFrameBuffer(b, frame);
    return to_frame(b);
}
}  // namespace

std::vector<std::uint8_t> encode_request(const request_spec& r) {
    flatbuffers::FlatBufferBuilder b(1024 + r.body.size());
    std::vector<flatbuffers::Offset<flatbuffers::String>> filters;
    for (const auto& f : r.filters)
        filters.push_back(b.CreateString(f));
    auto pairs = [&](const std::vector<std::pair<std::string, std::string>>& in) {
        std::vector<flatbuffers::Offset<wire::QueryPair>> v;
        for (const auto& [k, val] : in)
            v.push_back(wire::CreateQueryPair(b, b.CreateString(k), b.CreateString(val)));
        return b.CreateVector(v);
    };
    auto query = pairs(r.query);
    auto params = pairs(r.path_params);
    std::vector<flatbuffers::Offset<wire::Header>> headers;
    for (const auto& h : r.headers) {
        std::vector<flatbuffers::Offset<flatbuffers::String>> vals;
        for (const auto& v : h.values)
            vals.push_back(b.CreateString(v));
        headers.push_back(wire::CreateHeader(b, b.CreateString(h.name), b.CreateVector(vals)));
    }
    auto req = wire::CreateFilterRequest(
        b, r.id, r.budget_us, b.CreateString(r.route), b.CreateVector(filters), b.CreateString(r.method),
        b.CreateString(r.path), query, b.CreateVector(headers), b.CreateString(r.client_ip),
        r.body.empty() ? 0 : b.CreateVector(reinterpret_cast<const std::uint8_t*>(r.body.data()), r.body.size()),
        params,
        r.body_sha256
            ? b.CreateVector(reinterpret_cast<const std::uint8_t*>(r.body_sha256->data()), r.body_sha256->size())
            : 0);
    return finish(b, wire::Body::FilterRequest, req);
}

std::vector<std::uint8_t> encode_response(const response_view& r) {
    flatbuffers::FlatBufferBuilder b(256 + r.deny_body.size());
    auto str = [&b](std::string_view s) { return b.CreateString(s.data(), s.size()); };
    auto headers = [&](std::span<const header_view> hs) {
        std::vector<flatbuffers::Offset<wire::Header>> out;
        out.reserve(hs.size());
        for (const auto& h : hs) {
            flatbuffers::Offset<flatbuffers::String> v = str(h.value);
            out.push_back(wire::CreateHeader(b, str(h.name), b.CreateVector(&v, 1)));
        }
        return b.CreateVector(out);
    };
    flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::FilterResult>>> timings = 0;
    if (r.with_timings) {
        std::vector<flatbuffers::Offset<wire::FilterResult>> t;
        t.reserve(r.timings.size());
        for (const auto& ft : r.timings)
            t.push_back(wire::CreateFilterResult(b, str(ft.filter), ft.outcome, ft.elapsed_ns));
        timings = b.CreateVector(t);
    }
    flatbuffers::Offset<wire::FilterResponse> resp;
    if (r.allowed) {
        std::vector<flatbuffers::Offset<flatbuffers::String>> removes;
        removes.reserve(r.remove_headers.size());
        for (auto name : r.remove_headers)
            removes.push_back(str(name));
        auto sets = headers(r.set_headers);
        auto rem = b.CreateVector(removes);
        wire::FilterResponseBuilder rb(b);
        rb.add_id(r.id);
        rb.add_verdict(wire::Verdict::Allow);
        rb.add_set_headers(sets);
        rb.add_remove_headers(rem);
        if (r.with_timings)
            rb.add_filters(timings);
        resp = rb.Finish();
    } else {
        auto dh = headers(r.deny_headers);
        auto body = b.CreateVector(reinterpret_cast<const std::uint8_t*>(r.deny_body.data()), r.deny_body.size());
        auto ct = str(r.deny_content_type);
        wire::FilterResponseBuilder rb(b);
        rb.add_id(r.id);
        rb.add_verdict(wire::Verdict::Deny);
        rb.add_status(r.deny_status);
        rb.add_deny_headers(dh);
        rb.add_deny_body(body);
        rb.add_deny_content_type(ct);
        if (r.with_timings)
            rb.add_filters(timings);
        resp = rb.Finish();
    }
    return finish(b, wire::Body::FilterResponse, resp);
}

std::vector<std::uint8_t> encode_hello(std::uint16_t vmin, std::uint16_t vmax, std::uint32_t max_frame,
                                       std::uint64_t caps, std::string_view client_name) {
    flatbuffers::FlatBufferBuilder b(128);
    auto h = wire::CreateHello(b, vmin, vmax, max_frame, caps, b.CreateString(client_name.data(), client_name.size()));
    return finish(b, wire::Body::Hello, h);
}

std::vector<std::uint8_t> encode_hello_ack(std::uint16_t version, std::uint32_t max_frame, std::uint64_t caps,
                                           std::uint32_t max_in_flight) {
    flatbuffers::FlatBufferBuilder b(128);
    auto h = wire::CreateHelloAck(b, version, max_frame, caps, b.CreateString("filterd/1.0"), max_in_flight);
    return finish(b, wire::Body::HelloAck, h);
}

std::vector<std::uint8_t> encode_error(std::uint64_t id, wire::ErrorCode code, std::string_view message) {
    flatbuffers::FlatBufferBuilder b(128 + message.size());
    auto e = wire::CreateError(b, id, code, b.CreateString(message.data(), message.size()));
    return finish(b, wire::Body::Error, e);
}

}  // namespace filterd::proto
