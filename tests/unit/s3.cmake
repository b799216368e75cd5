# The S3 service (objstore/s3_*.c): users, and the HTTP server over a real
# pool in a tmp dir driven by libcurl.
if(TARGET cairn_objstore)
  set(S3T_UTIL ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_s3_util.c)
  cairn_unit_test(test_s3_users SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_s3_users.c
                  ${S3T_UTIL} LIBS cairn_objstore PkgConfig::CURL PkgConfig::SSL
                  LABELS quick s3 TIMEOUT 60)
  cairn_unit_test(test_s3_server SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_s3_server.c
                  ${S3T_UTIL} LIBS cairn_objstore PkgConfig::CURL PkgConfig::SSL
                  LABELS s3 TIMEOUT 240)
endif()
if(TARGET cairn_objstore)
  cairn_unit_test(test_s3_limits SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_s3_limits.c
                  ${S3T_UTIL} LIBS cairn_objstore PkgConfig::CURL PkgConfig::SSL
                  LABELS s3 TIMEOUT 120)
endif()
# What the object store gives the image registry (issue 7): bearer tokens,
# object links and lookups, and the system bucket's S3 rules.
if(TARGET cairn_objstore)
  cairn_unit_test(test_s3_tokens SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_s3_tokens.c
                  ${S3T_UTIL} LIBS cairn_objstore PkgConfig::CURL PkgConfig::SSL
                  LABELS quick s3 registry TIMEOUT 120)
endif()
