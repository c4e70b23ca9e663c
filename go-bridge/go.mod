module bitbucket.org/simpaisa/simpaisa-plugin-filter-bridge

go 1.25.3

require github.com/google/flatbuffers v2.0.8+incompatible
