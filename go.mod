module github.com/wsedge/wsedge

go 1.26
