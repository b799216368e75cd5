# node/ and core/metrics unit tests (helper "node").
cairn_unit_test(test_metrics SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_metrics.c
                LIBS cairn_core LABELS quick TIMEOUT 60)
# config.c and creds.c are compiled into the test directly: node/ builds an
# executable, not a library.
cairn_unit_test(test_config SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_config.c
                ${CMAKE_SOURCE_DIR}/node/config.c ${CMAKE_SOURCE_DIR}/node/creds.c
                LIBS cairn_core PkgConfig::INIH PkgConfig::SSL LABELS quick TIMEOUT 30)
target_compile_definitions(test_config PRIVATE CAIRN_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
# The admin API over a real pool, driven by libcurl with SigV4 as the CLI does.
cairn_unit_test(test_admin SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_admin.c
                ${CMAKE_SOURCE_DIR}/node/admin.c ${CMAKE_SOURCE_DIR}/node/admin_vol.c
                ${CMAKE_SOURCE_DIR}/node/admin_img.c ${CMAKE_SOURCE_DIR}/node/admin_tok.c
                ${CMAKE_SOURCE_DIR}/node/config.c ${CMAKE_SOURCE_DIR}/node/jobs.c
                ${CMAKE_SOURCE_DIR}/node/pool_info.c
                LIBS cairn_blockstore cairn_objstore cairn_chunkstore cairn_core PkgConfig::MHD
                PkgConfig::CURL PkgConfig::JANSSON PkgConfig::INIH PkgConfig::SSL LABELS quick TIMEOUT 60)
# Bearer tokens on the admin API (node/admin_tok.c, admin.c; issue 7).
cairn_unit_test(test_admin_tok SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_admin_tok.c
                ${CMAKE_SOURCE_DIR}/node/admin.c ${CMAKE_SOURCE_DIR}/node/admin_vol.c
                ${CMAKE_SOURCE_DIR}/node/admin_tok.c ${CMAKE_SOURCE_DIR}/node/admin_img.c
                ${CMAKE_SOURCE_DIR}/node/config.c ${CMAKE_SOURCE_DIR}/node/jobs.c
                ${CMAKE_SOURCE_DIR}/node/pool_info.c
                LIBS cairn_blockstore cairn_objstore cairn_chunkstore cairn_core PkgConfig::MHD
                PkgConfig::CURL PkgConfig::JANSSON PkgConfig::INIH PkgConfig::SSL
                LABELS quick registry TIMEOUT 60)
# admin_vol.c and admin_img.c call the registry (volumes from images).
if(TARGET cairn_registry)
  target_link_libraries(test_admin PRIVATE cairn_registry)
  target_link_libraries(test_admin_tok PRIVATE cairn_registry)
endif()
