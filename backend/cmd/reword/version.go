package main

import "reword/backend/buildinfo"

func buildVersion() string { return buildinfo.Version }
