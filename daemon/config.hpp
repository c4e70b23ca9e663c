#pragma once
// The daemon configuration (docs/configuration.md). Loaded and validated in full before use.
