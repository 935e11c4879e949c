# fuse_bench: reading a 10,000-device tree through the FUSE mount versus a tmpfs export of it.
add_executable(fuse_bench ${CMAKE_CURRENT_LIST_DIR}/fuse_bench.cpp)
target_link_libraries(fuse_bench PRIVATE apemu_fusefs apemu_core)
