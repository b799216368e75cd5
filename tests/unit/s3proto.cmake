# S3 protocol pieces (objstore/sigv4.c, s3_parse.c, s3_xml.c, s3_err.c): pure
# code, so the tests compile those files directly instead of linking
# cairn_objstore (which pulls the server, the chunk store and LMDB).
set(S3PROTO_SRC ${CMAKE_SOURCE_DIR}/objstore/sigv4.c ${CMAKE_SOURCE_DIR}/objstore/s3_parse.c
                ${CMAKE_SOURCE_DIR}/objstore/s3_xml.c ${CMAKE_SOURCE_DIR}/objstore/s3_err.c)
cairn_unit_test(test_sigv4 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_sigv4.c ${S3PROTO_SRC}
                LIBS cairn_core PkgConfig::SSL PkgConfig::EXPAT LABELS quick TIMEOUT 30)
cairn_unit_test(test_s3_parse SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_s3_parse.c
                ${S3PROTO_SRC} LIBS cairn_core PkgConfig::SSL PkgConfig::EXPAT LABELS quick
                TIMEOUT 30)
cairn_unit_test(test_s3_xml SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_s3_xml.c ${S3PROTO_SRC}
                LIBS cairn_core PkgConfig::SSL PkgConfig::EXPAT LABELS quick TIMEOUT 30)
