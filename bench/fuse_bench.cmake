# fuse_bench: whole-tree reads of a topology through the FUSE mount versus a tmpfs export of it.
add_executable(fuse_bench ${CMAKE_CURRENT_LIST_DIR}/fuse_bench.cpp)
target_link_libraries(fuse_bench PRIVATE apemu_testbed apemu_fusefs)
target_compile_definitions(fuse_bench PRIVATE APEMU_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
