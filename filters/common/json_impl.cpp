// The one translation unit that compiles Boost.JSON (header-only mode, from libboost1.81-dev).
#include <boost/json/src.hpp>
