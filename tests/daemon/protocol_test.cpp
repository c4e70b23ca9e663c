// Protocol round trips, the Verifier on truncated and garbled buffers, framing limits.
#include "protocol/framing.hpp"
#include "tests/support/request.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <random>

using namespace filterd;

namespace {
proto::request_spec sample() {
    proto::request_spec r;
    r.id = 42;
    r.budget_us = 3000;
    r.route = "payments";
    r.filters = {"merchant-auth", "rate-limit", "enrichment"};
    r.method = "POST";
    r.path = "/v1/merchants/m-1/payments";
    r.query = {{"b", "2"}, {"a", ""}};
    r.headers = {{"X-Merchant-Id", {"m-1"}}, {"Accept", {"a", "b"}}};
    r.client_ip = "10.1.2.3";
    r.body = std::string(1024, 'x');
    r.path_params = {{"merchant", "m-1"}};
    return r;
}
std::span<const std::uint8_t> body_of(const std::vector<std::uint8_t>& frame) {
    return std::span<const std::uint8_t>(frame).subspan(proto::length_bytes);
}
}  // namespace

TEST_CASE("request round trip keeps every field", "[protocol]") {
    auto b = testing::make_request(sample());
    auto v = b.view();
    CHECK(v.id() == 42);
    CHECK(b.req->budget_us() == 3000);
    CHECK(v.route() == "payments");
    REQUIRE(b.req->filters()->size() == 3);
    CHECK(b.req->filters()->Get(1)->str() == "rate-limit");
    CHECK(v.method() == "POST");
    CHECK(v.path() == "/v1/merchants/m-1/payments");
    CHECK(v.query_count() == 2);
    CHECK(v.client_ip() == "10.1.2.3");
    CHECK(v.body().size() == 1024);
    CHECK(v.header("x-merchant-id").first == "m-1");
    CHECK(v.header("ACCEPT").count == 2);
    CHECK(v.header("missing").count == 0);
    CHECK(v.path_param("merchant").value() == "m-1");
    CHECK(v.path_param("Merchant").value() == "m-1");  // names compare case-insensitively
    CHECK_FALSE(v.path_param("other").has_value());
    CHECK(proto::read_length(b.frame.data()) == b.frame.size() - 4);
}

TEST_CASE("hello, hello-ack and error round trip", "[protocol]") {
    proto::frame_status st{};
    auto h = proto::encode_hello(1, 3, 65536, 7, "x");
    auto* f = proto::verify_frame(body_of(h), st);
    REQUIRE(f != nullptr);
    REQUIRE(f->body_as_Hello() != nullptr);
    CHECK(f->body_as_Hello()->version_max() == 3);
    CHECK(f->body_as_Hello()->max_frame_bytes() == 65536);

    auto a = proto::encode_hello_ack(1, 4096, 1, 9);
    f = proto::verify_frame(body_of(a), st);
    REQUIRE(f != nullptr);
    REQUIRE(f->body_as_HelloAck() != nullptr);
    CHECK(f->body_as_HelloAck()->max_in_flight() == 9);

    auto e = proto::encode_error(5, wire::ErrorCode::Overloaded, "busy");
    f = proto::verify_frame(body_of(e), st);
    REQUIRE(f != nullptr);
    REQUIRE(f->body_as_Error() != nullptr);
    CHECK(f->body_as_Error()->id() == 5);
    CHECK(f->body_as_Error()->code() == wire::ErrorCode::Overloaded);
}

TEST_CASE("response round trip: an allow carries only its headers, a deny only its answer", "[protocol]") {
    proto::frame_status st{};
    const proto::header_view sets[] = {{"X-Gw-Merchant-Id", "m-1"}, {"X-Gw-Auth", "spv1"}};
    const std::string_view removes[] = {"X-Debug"};
    const proto::filter_timing_view timings[] = {{"merchant-auth", wire::FilterOutcome::Allow, 1200},
                                                 {"rate-limit", wire::FilterOutcome::Deny, 300}};

    proto::response_view allow;
    allow.id = 7;
    allow.allowed = true;
    allow.set_headers = sets;
    allow.remove_headers = removes;
    allow.deny_body = "never sent on an allow";
    allow.with_timings = true;
    allow.timings = timings;
    auto a = proto::encode_response(allow);
    CHECK(proto::read_length(a.data()) == a.size() - proto::length_bytes);
    const wire::Frame* f = proto::verify_frame(body_of(a), st);
    REQUIRE(f != nullptr);
    const wire::FilterResponse* r = f->body_as_FilterResponse();
    REQUIRE(r != nullptr);
    CHECK(r->id() == 7);
    CHECK(r->verdict() == wire::Verdict::Allow);
    REQUIRE(r->set_headers() != nullptr);
    REQUIRE(r->set_headers()->size() == 2);
    CHECK(r->set_headers()->Get(1)->name()->str() == "X-Gw-Auth");
    CHECK(r->set_headers()->Get(1)->values()->Get(0)->str() == "spv1");
    REQUIRE(r->remove_headers() != nullptr);
    CHECK(r->remove_headers()->Get(0)->str() == "X-Debug");
    CHECK(r->deny_body() == nullptr);
    REQUIRE(r->filters() != nullptr);
    REQUIRE(r->filters()->size() == 2);
    CHECK(r->filters()->Get(1)->name()->str() == "rate-limit");
    CHECK(r->filters()->Get(1)->outcome() == wire::FilterOutcome::Deny);
    CHECK(r->filters()->Get(0)->elapsed_ns() == 1200);

    proto::response_view deny;
    deny.id = 8;
    deny.allowed = false;
    deny.set_headers = sets;  // ignored on a deny
    deny.deny_status = 429;
    const proto::header_view retry[] = {{"Retry-After", "1"}};
    deny.deny_headers = retry;
    deny.deny_body = R"({"status":429})";
    deny.deny_content_type = "application/problem+json";
    deny.timings = timings;  // not sent: with_timings is false
    auto d = proto::encode_response(deny);
    f = proto::verify_frame(body_of(d), st);
    REQUIRE(f != nullptr);
    r = f->body_as_FilterResponse();
    REQUIRE(r != nullptr);
    CHECK(r->verdict() == wire::Verdict::Deny);
    CHECK(r->status() == 429);
    CHECK(r->set_headers() == nullptr);
    REQUIRE(r->deny_headers() != nullptr);
    CHECK(r->deny_headers()->Get(0)->name()->str() == "Retry-After");
    REQUIRE(r->deny_body() != nullptr);
    CHECK(std::string(r->deny_body()->begin(), r->deny_body()->end()) == R"({"status":429})");
    CHECK(r->deny_content_type()->str() == "application/problem+json");
    CHECK(r->filters() == nullptr);
}

TEST_CASE("the Verifier rejects every truncation of a request", "[protocol][verifier]") {
    auto frame = proto::encode_request(sample());
    auto body = body_of(frame);
    std::size_t rejected = 0;
    for (std::size_t n = 0; n < body.size(); ++n) {
        std::vector<std::uint8_t> cut(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(n));
        proto::frame_status st{};
        const wire::Frame* f = proto::verify_frame(cut, st);
        if (f == nullptr) {
            ++rejected;
            continue;
        }
        // Only trailing alignment padding may be cut without losing data: then every field is intact.
        INFO("truncated to " << n << " of " << body.size() << " bytes");
        CHECK(body.size() - n < 8);
        REQUIRE(f->body_as_FilterRequest() != nullptr);
        request_view v(*f->body_as_FilterRequest());
        CHECK(v.body().size() == 1024);
        CHECK(v.path_param("merchant").value_or("") == "m-1");
    }
    CHECK(rejected >= body.size() - 8);
}

TEST_CASE("the Verifier rejects garbled offsets and wrong identifiers", "[protocol][verifier]") {
    auto frame = proto::encode_request(sample());
    std::vector<std::uint8_t> body(frame.begin() + 4, frame.end());
    proto::frame_status st{};

    SECTION("wrong file identifier") {
        body[4] = 'X';
        CHECK(proto::verify_frame(body, st) == nullptr);
        CHECK(st == proto::frame_status::bad_identifier);
    }
    SECTION("root offset pointing outside the buffer") {
        body[0] = 0xff;
        body[1] = 0xff;
        body[2] = 0xff;
        body[3] = 0x7f;
        CHECK(proto::verify_frame(body, st) == nullptr);
        CHECK(st == proto::frame_status::verify_failed);
    }
    SECTION("random byte flips never crash, and results stay readable") {
        std::mt19937 rng(1234);
        int accepted = 0;
        for (int i = 0; i < 5000; ++i) {
            auto g = body;
            for (int k = 0; k < 3; ++k)
                g[rng() % g.size()] ^= static_cast<std::uint8_t>(1 + rng() % 255);
            const wire::Frame* f = proto::verify_frame(g, st);
            if (f != nullptr && f->body_as_FilterRequest() != nullptr) {
                // Whatever survives the Verifier must be safe to read in full.
                request_view v(*f->body_as_FilterRequest());
                std::size_t n = 0;
                v.for_each_header([&](std::string_view a, std::string_view b) { n += a.size() + b.size(); });
                v.for_each_query([&](std::string_view a, std::string_view b) { n += a.size() + b.size(); });
                n += v.body().size() + v.path().size();
                CHECK(n < g.size() * 2);
                ++accepted;
            }
        }
        CHECK(accepted < 5000);  // most garbling must be caught
    }
    SECTION("a valid Frame without a body is refused") {
        flatbuffers::FlatBufferBuilder b;
        wire::FinishFrameBuffer(b, wire::CreateFrame(b));
        std::vector<std::uint8_t> empty(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
        CHECK(proto::verify_frame(empty, st) == nullptr);
        CHECK(st == proto::frame_status::no_body);
    }
}

TEST_CASE("frame_splitter refuses oversized and empty frames from the length prefix alone", "[protocol]") {
    proto::frame_splitter s(4096);
    std::uint8_t hdr[4];
    proto::write_length(hdr, 4097);
    auto buf = s.prepare(4);
    std::memcpy(buf.data(), hdr, 4);
    s.commit(4);
    std::span<const std::uint8_t> out;
    proto::frame_status st{};
    CHECK(s.next(out, st) == proto::frame_splitter::next_result::error);
    CHECK(st == proto::frame_status::too_large);

    proto::frame_splitter z(4096);
    proto::write_length(hdr, 0);
    buf = z.prepare(4);
    std::memcpy(buf.data(), hdr, 4);
    z.commit(4);
    CHECK(z.next(out, st) == proto::frame_splitter::next_result::error);
    CHECK(st == proto::frame_status::empty);
}

TEST_CASE("frame_splitter says how much of a frame is missing, so one read can take the rest", "[protocol]") {
    auto big = sample();
    big.body = std::string(100'000, 'b');
    auto a = proto::encode_request(big);
    proto::frame_splitter s(1 << 20);
    CHECK(s.missing() == 0);  // nothing buffered
    auto buf = s.prepare(2);
    std::memcpy(buf.data(), a.data(), 2);
    s.commit(2);
    CHECK(s.missing() == 0);  // the length prefix is not complete yet
    buf = s.prepare(1000);
    std::memcpy(buf.data(), a.data() + 2, 998);
    s.commit(998);
    REQUIRE(s.missing() == a.size() - 1000);
    buf = s.prepare(s.missing());
    REQUIRE(buf.size() >= a.size() - 1000);
    std::memcpy(buf.data(), a.data() + 1000, a.size() - 1000);
    s.commit(a.size() - 1000);
    CHECK(s.missing() == 0);
    std::span<const std::uint8_t> out;
    proto::frame_status st{};
    REQUIRE(s.next(out, st) == proto::frame_splitter::next_result::frame);
    CHECK(out.size() == a.size() - proto::length_bytes);

    proto::frame_splitter small(4096);  // a prefix over the limit asks for nothing: next() refuses it
    buf = small.prepare(1000);
    std::memcpy(buf.data(), a.data(), 1000);
    small.commit(1000);
    CHECK(small.missing() == 0);
    CHECK(small.next(out, st) == proto::frame_splitter::next_result::error);
}

TEST_CASE("frame_splitter reassembles frames fed one byte at a time", "[protocol]") {
    auto a = proto::encode_request(sample());
    auto b = proto::encode_hello(1, 1, 0, 0, "y");
    std::vector<std::uint8_t> stream(a);
    stream.insert(stream.end(), b.begin(), b.end());
    proto::frame_splitter s(1 << 20);
    std::vector<std::size_t> sizes;
    for (std::uint8_t byte : stream) {
        auto buf = s.prepare(1);
        buf[0] = byte;
        s.commit(1);
        std::span<const std::uint8_t> out;
        proto::frame_status st{};
        while (s.next(out, st) == proto::frame_splitter::next_result::frame)
            sizes.push_back(out.size());
    }
    REQUIRE(sizes.size() == 2);
    CHECK(sizes[0] == a.size() - 4);
    CHECK(sizes[1] == b.size() - 4);
    CHECK_FALSE(s.mid_frame());
}

TEST_CASE("frame_splitter hands out 8-byte aligned bodies whatever the peer's frame lengths", "[protocol]") {
    // A valid frame padded to odd lengths (the Verifier ignores trailing bytes): without realignment
    // the frames after the first would sit at odd addresses, and every FlatBuffers read is then UB.
    auto base = proto::encode_request(sample());
    std::vector<std::uint8_t> stream;
    for (std::size_t extra : {1u, 3u, 0u, 5u, 2u, 7u}) {
        std::vector<std::uint8_t> f(base.begin() + 4, base.end());
        f.resize(f.size() + extra, 0);
        std::uint8_t len[4];
        proto::write_length(len, static_cast<std::uint32_t>(f.size()));
        stream.insert(stream.end(), len, len + 4);
        stream.insert(stream.end(), f.begin(), f.end());
    }
    for (std::size_t chunk : {stream.size(), std::size_t{7}, std::size_t{1}}) {
        INFO("chunk " << chunk);
        proto::frame_splitter s(1 << 20);
        int frames = 0;
        for (std::size_t off = 0; off < stream.size(); off += chunk) {
            std::size_t n = std::min(chunk, stream.size() - off);
            auto buf = s.prepare(n);
            std::memcpy(buf.data(), stream.data() + off, n);
            s.commit(n);
            std::span<const std::uint8_t> out;
            proto::frame_status st{};
            while (s.next(out, st) == proto::frame_splitter::next_result::frame) {
                CHECK(reinterpret_cast<std::uintptr_t>(out.data()) % 8 == 0);
                const wire::Frame* f = proto::verify_frame(out, st);
                REQUIRE(f != nullptr);
                CHECK(f->body_as_FilterRequest()->route()->str() == sample().route);
                ++frames;
            }
        }
        CHECK(frames == 6);
    }
}
