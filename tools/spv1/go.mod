module filterd.local/tools/spv1

go 1.24.0
