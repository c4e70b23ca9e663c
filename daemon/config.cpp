#include "daemon/config.hpp"
