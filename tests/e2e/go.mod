module bitbucket.org/simpaisa/simpaisa-gateway-e2e

go 1.25.3
