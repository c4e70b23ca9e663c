module bitbucket.org/simpaisa/gateway-lint

go 1.25.3

require gopkg.in/yaml.v3 v3.0.1
