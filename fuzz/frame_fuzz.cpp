// libFuzzer target for the frame decoder: splitting a byte stream into frames, the Verifier, and every
// request_view accessor on whatever passes verification.
#include "filters/common/filter.hpp"
#include "protocol/framing.hpp"

#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace filterd;
    proto::frame_splitter s(64 * 1024);
    std::size_t off = 0;
    while (off < size) {
        // Feed in uneven chunks to exercise reassembly.
        std::size_t chunk = std::min<std::size_t>(size - off, 1 + (data[off] % 97));
        auto buf = s.prepare(chunk);
        std::memcpy(buf.data(), data + off, chunk);
        s.commit(chunk);
        off += chunk;
        for (;;) {
            std::span<const std::uint8_t> frame;
            proto::frame_status st{};
            auto r = s.next(frame, st);
            if (r != proto::frame_splitter::next_result::frame)
                break;
            const wire::Frame* f = proto::verify_frame(frame, st);
            if (f == nullptr)
                continue;
            if (const auto* req = f->body_as_FilterRequest()) {
                request_view v(*req);
                std::size_t n = v.route().size() + v.method().size() + v.path().size() + v.client_ip().size() +
                                v.body().size() + v.query_count();
                v.for_each_header([&](std::string_view a, std::string_view b) { n += a.size() + b.size(); });
                v.for_each_query([&](std::string_view a, std::string_view b) { n += a.size() + b.size(); });
                (void)v.header("x-merchant-id");
                (void)v.path_param("merchant");
                if (auto d = v.body_sha256()) {
                    n += d->size();
                    if (v.body_fields_consistent() && d->size() != 32)
                        __builtin_trap();  // a digest of another size is never consistent
                }
                if (const auto* fl = req->filters())
                    for (const auto* name : *fl)
                        n += request_view::sv(name).size();
                if (n > frame.size() * 4)
                    __builtin_trap();  // views must stay inside the frame
            } else if (const auto* h = f->body_as_Hello()) {
                (void)h->client_name();
            }
        }
    }
    return 0;
}
