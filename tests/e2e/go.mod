module bitbucket.org/simpaisa/simpaisa-gateway-e2e

go 1.25.3

require filterd.local/tools/spv1 v0.0.0

replace filterd.local/tools/spv1 => ../../tools/spv1
