add_test(NAME install.find_package_consumer
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/install/install_test.sh ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR})
set_tests_properties(install.find_package_consumer PROPERTIES TIMEOUT 300)
