// run_chain and run_chain_async: no allocation on the allow path, and a deny even when allocation fails.
#include "filters/common/chain.hpp"  // first: the header is self-contained

#include "perf/support/alloc_counter.hpp"  // this binary's operator new: counts, and fails on demand
#include "tests/support/request.hpp"

#include <catch2/catch.hpp>

#include <boost/json/value.hpp>

#include <memory>
#include <string>
#include <vector>

using namespace filterd;
namespace json = boost::json;

namespace {

enum class behaviour { allow, deny_without_status, async_allow };

class test_filter final : public filter {
public:
    explicit test_filter(behaviour b) : b_(b) {}
    outcome on_request(const request_view&, context&) const noexcept override {
        return b_ == behaviour::deny_without_status ? outcome::deny : outcome::allow;
    }
    bool is_async() const noexcept override { return b_ == behaviour::async_allow; }

private:
    behaviour b_;
};

class test_instance final : public filter_instance {
public:
    explicit test_instance(behaviour b) : b_(b) {}
    std::shared_ptr<const filter> for_route(std::string_view, const json::value*, const std::string&) const override {
        return std::make_shared<test_filter>(b_);
    }

private:
    behaviour b_;
};

class test_factory final : public filter_factory {
public:
    test_factory(std::string name, behaviour b) : name_(std::move(name)), b_(b) {}
    std::string_view name() const override { return name_; }
    std::shared_ptr<filter_instance> create(const json::value*, const std::string&,
                                            const std::shared_ptr<filter_instance>&) const override {
        return std::make_shared<test_instance>(b_);
    }

private:
    std::string name_;
    behaviour b_;
};

/// A set with one route "r" running `count` filters of behaviour `b`, named f0, f1, ...
struct fixture {
    registry reg;
    std::shared_ptr<const filter_set> set;
    testing::built_request request;

    fixture(std::size_t count, behaviour b) {
        json::object route;
        proto::request_spec spec;
        spec.route = "r";
        for (std::size_t i = 0; i < count; ++i) {
            std::string name = "f" + std::to_string(i);
            reg.add(std::make_shared<test_factory>(name, b));
            route[name] = nullptr;
            spec.filters.push_back(name);
        }
        json::value routes = json::object{{"r", route}};
        set = filter_set::build(nullptr, &routes, reg, nullptr);
        request = testing::make_request(spec);
    }
};

/// Allocations made by `f`.
template <class F>
std::uint64_t allocations_of(F&& f) {
    const std::uint64_t before = alloc_counter::now();
    f();
    return alloc_counter::now() - before;
}

/// Runs `f` letting `succeed` allocations on this thread through, then failing every one.
template <class F>
void with_failing_allocation(std::int64_t succeed, F&& f) {
    alloc_counter::fail_after = succeed;
    f();
    alloc_counter::fail_after = -1;
}

}  // namespace

TEST_CASE("run_chain allocates nothing when every filter allows", "[chain]") {
    fixture fx(max_filters_per_route, behaviour::allow);
    const request_view view = fx.request.view();
    context ctx;
    chain_result out;  // fresh: its timings hold all max_filters_per_route entries without growing
    CHECK(allocations_of([&] { run_chain(*fx.set, view, ctx, out); }) == 0);
    CHECK(out.status == chain_status::done);
    CHECK(out.allowed);
    REQUIRE(out.timings.size() == max_filters_per_route);
    for (std::size_t i = 0; i < out.timings.size(); ++i) {
        CHECK(out.timings[i].filter->name == "f" + std::to_string(i));
        CHECK(out.timings[i].result == outcome::allow);
    }
}

TEST_CASE("run_chain denies when the deny body cannot be allocated", "[chain]") {
    fixture fx(2, behaviour::deny_without_status);
    const request_view view = fx.request.view();
    context ctx;
    chain_result out;
    with_failing_allocation(0, [&] { run_chain(*fx.set, view, ctx, out); });
    CHECK(out.status == chain_status::done);
    CHECK_FALSE(out.allowed);
    CHECK(ctx.deny_status == 403);
    CHECK(ctx.reason == "denied");
    CHECK(ctx.deny_body.empty());
    REQUIRE(out.timings.size() == 1);  // the second filter never ran
    CHECK(out.timings[0].result == outcome::deny);

    // With memory, the same chain writes the problem body.
    context ok;
    run_chain(*fx.set, view, ok, out);
    CHECK(ok.deny_status == 403);
    CHECK(ok.deny_body == R"({"type":"about:blank","title":"Forbidden","status":403})");
}

TEST_CASE("run_chain_async denies when it cannot allocate its run or a filter's callback", "[chain]") {
    fixture fx(3, behaviour::async_allow);
    const request_view view = fx.request.view();
    int done_calls = 0;
    std::function<void()> done = [&done_calls] { ++done_calls; };

    context ctx;
    chain_result out;
    run_chain_async(*fx.set, view, ctx, out, done);
    CHECK(done_calls == 1);
    CHECK(out.allowed);
    CHECK(out.timings.size() == 3);

    // The allocation that fails: with 0 let through, the run itself; with 1, the first filter's resume
    // callback (no filter has run); with 2, the second filter's (the first one ran).
    for (std::int64_t succeed : {0, 1, 2}) {
        CAPTURE(succeed);
        context starved;
        chain_result denied;
        const int before = done_calls;
        with_failing_allocation(succeed, [&] { run_chain_async(*fx.set, view, starved, denied, done); });
        CHECK(done_calls == before + 1);
        CHECK_FALSE(denied.allowed);
        CHECK(starved.deny_status == 500);
        CHECK(starved.reason == "out_of_memory");
        CHECK(denied.timings.size() == (succeed == 2 ? 1u : 0u));  // the filters that ran
    }
}
